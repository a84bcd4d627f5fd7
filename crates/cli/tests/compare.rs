//! `--baseline`: each side equal to ferret-io's numbers, and the verdicts on generated pairs.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::Distribution;
use rand_distr::LogNormal;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// `ferret-scan FILE --format json --limit 0 ARGS...` of a comparison, parsed.
fn compare_json(file: &Path, args: &[&std::ffi::OsStr]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
        .arg(file)
        .args(["--format", "json", "--limit", "0", "--no-sidecar"])
        .args(args)
        .output()
        .unwrap();
    serde_json::from_str(&ok!(out)).unwrap()
}

/// Checks a comparison: each side holds ferret-io's statistics of its run (`want_base`,
/// `want_target`), the deltas are their differences, and a function of one run only is new or
/// gone.
fn check_comparison(got: &Value, want_base: &Value, want_target: &Value, what: &str) {
    let stats = |want: &Value| want["stats"].as_object().unwrap().clone();
    let (base, target) = (stats(want_base), stats(want_target));
    assert_eq!(got["base"]["spans"], want_base["span_count"], "{what}");
    assert_eq!(got["target"]["spans"], want_target["span_count"], "{what}");
    let entries = by_key(&got["functions"], "name");
    let mut names: Vec<&String> = base.keys().chain(target.keys()).collect();
    names.sort();
    names.dedup();
    assert_eq!(
        entries.len(),
        names.len(),
        "{what}: every function of either run"
    );
    for name in names {
        let e = entries[name.as_str()];
        let (b, t) = (base.get(name), target.get(name));
        check_side(&e["base"], b, &format!("{what} base {name}"));
        check_side(&e["target"], t, &format!("{what} target {name}"));
        let change = e["change"].as_str().unwrap();
        match (b, t) {
            (None, _) => assert_eq!(change, "new", "{what} {name}"),
            (_, None) => assert_eq!(change, "gone", "{what} {name}"),
            _ => {
                assert!(["slower", "faster", "same"].contains(&change), "{change}");
                for f in ["count", "error_count", "total_duration", "self_time", "p99"] {
                    let (tv, bv) = (
                        e["target"][f].as_f64().unwrap(),
                        e["base"][f].as_f64().unwrap(),
                    );
                    let d = e["delta"][f].as_f64().unwrap();
                    assert!(
                        close(d, tv - bv),
                        "{what} {name} delta {f}: {d} vs {tv} - {bv}"
                    );
                }
            }
        }
    }
}

/// On the multi-run fixtures, each side of a comparison holds ferret-io's numbers of its run,
/// the deltas are their differences, and a function of one run only is new or gone; so with a
/// baseline in another file (the other layout's recording, given directly as a database).
#[test]
fn a_comparison_shows_ferrets_numbers_of_each_run_and_their_differences() {
    for db in ["beaver1.db", "generated1.db"] {
        let dir = tempfile::tempdir().unwrap();
        let file = convert(&fixture(db), dir.path());
        let reference = reference(db);
        let runs: Vec<&String> = reference["runs"].as_object().unwrap().keys().collect();
        for (base, target) in [(runs[0], runs[2]), (runs[1], runs[0])] {
            let got = compare_json(
                &file,
                &[
                    "--baseline".as_ref(),
                    base.as_ref(),
                    "--run".as_ref(),
                    target.as_ref(),
                ],
            );
            assert_eq!(got["base"]["run_id"], base.as_str());
            assert_eq!(got["target"]["run_id"], target.as_str());
            let want = |run: &str| &reference["runs"][run];
            check_comparison(
                &got,
                want(base),
                want(target),
                &format!("{db} {base} -> {target}"),
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    fails!(
        run!("ferret-scan", &file, "--baseline", "no-such-run"),
        "--baseline no-such-run is neither a file nor a run",
        "closest: "
    );
    fails!(
        run!(
            "ferret-scan",
            &file,
            "--baseline",
            "run-one",
            "--baseline-run",
            "x"
        ),
        "--baseline run-one: no such file"
    );
    let other = fixture("beaver2.db");
    for run in ["run-one", "run-three-latest"] {
        let args: [&std::ffi::OsStr; 6] = [
            "--baseline".as_ref(),
            other.as_ref(),
            "--baseline-run".as_ref(),
            run.as_ref(),
            "--run".as_ref(),
            run.as_ref(),
        ];
        let got = compare_json(&file, &args);
        let (base, target) = (reference("beaver2.db"), reference("beaver1.db"));
        check_comparison(
            &got,
            &base["runs"][run],
            &target["runs"][run],
            &format!("beaver2 -> beaver1 {run}"),
        );
    }
}

/// Two runs ("base", then "target") of one service as JSON lines: 30 request handlers (root
/// spans), each with a median of 0.5-20 ms and log-normal noise (sigma 0.5), called 1500-3000
/// times a run, each with one child; handler `slowed` (if any) `factor` times slower in the
/// target. (Handlers are roots because a caller's total time holds its callees': under the
/// default sort a slowed function's callers rise with it, and `--sort self` ranks it alone.)
fn program_runs(seed: u64, slowed: Option<usize>, factor: f64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let program: Vec<(f64, u64)> = (0..30)
        .map(|_| (0.0005 * 40f64.powf(rng.gen()), rng.gen_range(1500..3000)))
        .collect();
    let mut out = String::new();
    let mut start = 1.7e9;
    let mut span = |id: &str, parent: &str, run: &str, name: &str, start: f64, duration: f64| {
        out.push_str(&format!(
            "{{\"span_id\":\"{id}\",\"parent_id\":{parent},\"run_id\":\"{run}\",\"name\":\"{name}\",\"start_time\":{start},\"end_time\":{},\"duration\":{duration},\"tags\":{{}},\"status\":\"ok\"}}\n",
            start + duration
        ));
    };
    for (r, run) in ["base", "target"].iter().enumerate() {
        for (f, &(median, calls)) in program.iter().enumerate() {
            let factor = if r == 1 && slowed == Some(f) {
                factor
            } else {
                1.0
            };
            let noise = LogNormal::new((median * factor).ln(), 0.5).unwrap();
            for call in 0..calls {
                let d = noise.sample(&mut rng);
                let root = format!("{r:08x}{f:08x}{call:016x}");
                let child = format!("{r:08x}{f:08x}{:016x}", call | 1 << 40);
                span(&root, "null", run, &format!("f{f}"), start, d);
                span(&child, &format!("\"{root}\""), run, "db", start, d * 0.3);
                start += d * 1.2;
            }
        }
    }
    out
}

/// On generated pairs of runs, a function made 25% slower is ranked first and called slower,
/// nothing else is called changed, `--fail-on-regression` exits 3 naming it (and 0 for a larger
/// threshold or equal runs), CSV and the table say the same, and the differential flame graph
/// paints it the reddest.
#[test]
fn a_slowed_function_is_ranked_first_called_slower_and_gates_a_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let convert_lines = |name: &str, lines: String| {
        let input = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&input, lines).unwrap();
        let out = dir.path().join(format!("{name}.ferret"));
        ok!(run!("ferret-convert", &input, "-o", &out, "--quiet"));
        out
    };
    let slowed = convert_lines("slowed", program_runs(7, Some(11), 1.25));
    let base: [&std::ffi::OsStr; 4] = [
        "--baseline".as_ref(),
        "base".as_ref(),
        "--run".as_ref(),
        "target".as_ref(),
    ];
    let got = compare_json(&slowed, &base);
    let functions = got["functions"].as_array().unwrap();
    assert_eq!(
        (&functions[0]["name"], &functions[0]["change"]),
        (&Value::from("f11"), &Value::from("slower")),
        "{}",
        functions[0]
    );
    let shift = &functions[0]["shift"];
    assert!(
        shift["low"].as_f64().unwrap() < 0.25 && 0.25 < shift["high"].as_f64().unwrap(),
        "{shift}"
    );
    let changed: Vec<&Value> = functions[1..]
        .iter()
        .filter(|f| f["change"] != "same")
        .collect();
    assert!(changed.is_empty(), "false alarms: {changed:?}");
    // The gate: exit 3 and one line naming the function, above 10%; nothing above 60%.
    let compare = |file: &Path, more: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
            .arg(file)
            .args(base)
            .args(more)
            .output()
            .unwrap()
    };
    let gate =
        |file: &Path, pct: &str| compare(file, &["--fail-on-regression".as_ref(), pct.as_ref()]);
    let failed = gate(&slowed, "10");
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(3), "{err}");
    assert!(
        err.trim_end().lines().count() == 1
            && err.contains("f11 (+2")
            && err.contains("regression"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&failed.stdout).contains("f11"),
        "the comparison is printed too"
    );
    assert_eq!(gate(&slowed, "60").status.code(), Some(0));
    let equal = convert_lines("equal", program_runs(7, None, 1.0));
    assert_eq!(gate(&equal, "10").status.code(), Some(0));
    // CSV: a row per function, the first the slowed one; the table: signs, no colour off a terminal.
    let csv = ok!(compare(
        &slowed,
        &["--format".as_ref(), "csv".as_ref(), "-l0".as_ref()]
    ));
    let rows: Vec<&str> = csv.lines().collect();
    assert!(
        rows[0].starts_with("name,change,p_value,q_value,shift,shift_low,shift_high,base_count,"),
        "{}",
        rows[0]
    );
    assert_eq!(rows.len(), functions.len() + 1);
    assert!(rows[1].starts_with("f11,slower,"), "{}", rows[1]);
    let table = ok!(compare(&slowed, &[]));
    assert!(
        table.contains("1 slower, 0 faster, 30 same, 0 new, 0 gone"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("▲  f11 ") && l.contains("slower +2")),
        "{table}"
    );
    assert!(!table.contains('\x1b'), "no colour off a terminal");
    let coloured = scan_on_a_terminal(&slowed, "--baseline base --run target");
    assert!(
        coloured.contains("\x1b[31m▲\x1b[0m  f11 "),
        "red on a terminal: {coloured}"
    );
    // The differential flame graph: the target's frames, f11 the reddest (the largest growth).
    let svg = dir.path().join("diff.svg");
    ok!(compare(&slowed, &["--flamegraph".as_ref(), svg.as_ref()]));
    let text = std::fs::read_to_string(&svg).unwrap();
    let xml = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, xml).expect("well-formed XML");
    let fill_of = |frame: &str| {
        doc.descendants()
            .filter(|n| n.has_tag_name("g"))
            .find(|g| {
                g.children().any(|c| {
                    c.has_tag_name("title")
                        && c.text()
                            .is_some_and(|t| t.starts_with(&format!("{frame} (")))
                })
            })
            .and_then(|g| g.children().find(|c| c.has_tag_name("rect")))
            .and_then(|r| r.attribute("fill"))
            .map(str::to_string)
    };
    assert_eq!(
        fill_of("f11").as_deref(),
        Some("rgb(255,100,100)"),
        "{text}"
    );
    assert!(text.contains("against base"));
}

/// The README's comparison example is what `tools/readme-example.py` prints, line for line (but
/// the header's elapsed time), from these binaries.
#[test]
fn the_readme_quotes_the_comparison_example_its_script_prints() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_ferret-scan"))
        .parent()
        .unwrap();
    let script = repo_root().join("tools/readme-example.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .env("FERRET_BIN", bin)
        .output()
        .unwrap();
    let printed = ok!(out);
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let without_elapsed = |line: &str| {
        line.rsplit_once(" · ")
            .map_or(line, |(head, _)| head)
            .to_string()
    };
    let quoted: Vec<String> = readme.lines().map(without_elapsed).collect();
    assert!(printed.lines().count() >= 8, "{printed}");
    for line in printed.lines() {
        assert!(
            quoted.contains(&without_elapsed(line)),
            "the README does not quote this line of tools/readme-example.py:\n{line}"
        );
    }
}
