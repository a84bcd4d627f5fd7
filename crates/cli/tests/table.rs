//! The function table: ferret-io's numbers for every run, runs, a closed pipe, flat memory, and
//! questions that read only their run's blocks.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::*;

/// The fixture has several runs, so that the default run (the latest start's) is a choice.
fn assert_several_runs(db: &str) {
    let runs = reference(db)["runs"].as_object().unwrap().len();
    assert!(runs >= 3, "{db}: the fixture has {runs} runs");
}

#[test]
fn stats_equal_ferret_io_on_the_beaver1_fixture() {
    assert_several_runs("beaver1.db");
    for_each_way("beaver1.db", check_stats_against_ferret);
}

#[test]
fn stats_equal_ferret_io_on_the_beaver2_fixture() {
    assert_several_runs("beaver2.db");
    for_each_way("beaver2.db", check_stats_against_ferret);
}

#[test]
fn stats_equal_ferret_io_on_the_generated_fixture() {
    assert_several_runs("generated1.db");
    for_each_way("generated1.db", check_stats_against_ferret);
}

#[test]
fn runs_from_the_directory_equal_runs_from_the_records() {
    // The golden files of both versions hold the same spans: version 1's runs come from a pass
    // over its records, version 2's from its run directory, and a scan of each run from zones.
    let runs = |version: u32| {
        let file = golden(&format!("v{version}.ferret"));
        let listed = ok!(run!("ferret-scan", &file, "--runs", "--format", "json"));
        let table = ok!(run!(
            "ferret-scan",
            &file,
            "--run",
            "run1",
            "--format",
            "csv"
        ));
        (listed, table)
    };
    let (v1, v2) = (runs(1), runs(2));
    assert!(v1.0.contains("run0") && v1.0.contains("run1"), "{}", v1.0);
    assert_eq!(v1, v2);
    // A version 1 file says once that it is read whole, and what to run.
    let note = |version: u32| {
        let out = run!(
            "ferret-scan",
            golden(&format!("v{version}.ferret")),
            "--runs"
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let old = note(1);
    assert_eq!(old.matches("reads the whole file").count(), 1, "{old}");
    assert!(old.contains("--force"), "{old}");
    assert_eq!(note(2), "");
}

#[test]
fn scan_output_survives_a_closed_pipe_and_lists_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver2.db"), dir.path());
    let runs = ok!(run!("ferret-scan", &file, "--runs"));
    assert_eq!(runs.lines().count(), 3);
    assert!(
        runs.lines()
            .last()
            .unwrap()
            .starts_with("* run-three-latest"),
        "{runs}"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
        .args([file.as_os_str(), "--limit".as_ref(), "0".as_ref()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = ok!(run!(
        "ferret-scan",
        &file,
        "--name",
        "^level",
        "--limit",
        "0"
    ));
    // A header line, the column names, the rule, then level1..level3.
    assert_eq!(table.lines().count(), 3 + 3, "{table}");
}

/// Peak resident memory of one run of `ferret-scan FILE`, in KiB, as the scanner itself reads
/// it from the kernel (`VmHWM`) at exit.
fn scan_peak_rss_kib(file: &Path) -> u64 {
    peak_rss_of(run!("ferret-scan", file, "--print-peak-rss"))
}

#[test]
fn scan_memory_does_not_grow_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (small, large) = (
        dir.path().join("small.ferret"),
        dir.path().join("large.ferret"),
    );
    ferret_benches::write_trace(&small, 300_000, 200);
    ferret_benches::write_trace(&large, 3_000_000, 200);
    let large_bytes = std::fs::metadata(&large).unwrap().len();
    assert!(
        large_bytes > 150 << 20,
        "the large file must dwarf any fixed budget"
    );
    let (a, b) = (scan_peak_rss_kib(&small), scan_peak_rss_kib(&large));
    // Ten times the records, the same memory: pages are handed back chunk by chunk. Mapping the
    // whole file would add ~165 MiB here; allow 16 MiB of noise.
    assert!(
        b < a + (16 << 10),
        "peak RSS {a} KiB at 300k records, {b} KiB at 3M"
    );
    // The Parquet export too: its per-span scratch and the records behind it are released.
    let export_rss = |file: &Path| {
        let out = file.with_extension("parquet");
        peak_rss_of(run!(
            "ferret-scan",
            file,
            "--all-runs",
            "--to-parquet",
            &out,
            "--print-peak-rss"
        ))
    };
    let (a, b) = (export_rss(&small), export_rss(&large));
    assert!(
        b < a + (32 << 10),
        "export peak RSS {a} KiB at 300k records, {b} KiB at 3M"
    );
}

/// Two runs of 4096 spans each, interleaved in four phases of 2048 (two blocks each: a, b, a, b),
/// as JSON lines: trees of a root and its 15 children.
fn two_runs_lines() -> String {
    let mut out = String::new();
    for phase in 0..4u64 {
        let (r, run) = [(1u64, "run-a"), (2, "run-b")][phase as usize % 2];
        for i in phase / 2 * 2048..(phase / 2 + 1) * 2048 {
            let id = format!("{:032x}", r << 32 | i);
            let parent = match i % 16 {
                0 => "null".to_string(),
                _ => format!("\"{:032x}\"", r << 32 | (i / 16 * 16)),
            };
            let start = 1.7e9 + phase as f64 * 1e3 + i as f64 * 1e-3;
            let duration = if i % 16 == 0 {
                0.5
            } else {
                1e-4 * (i % 16) as f64
            };
            out.push_str(&format!(
                "{{\"span_id\":\"{id}\",\"parent_id\":{parent},\"run_id\":\"{run}\",\"name\":\"f{}\",\"start_time\":{start},\"end_time\":{},\"duration\":{duration},\"tags\":{{}},\"status\":\"ok\"}}\n",
                i % 16,
                start + duration
            ));
        }
    }
    out
}

/// A question about one run reads only the blocks holding it: a damaged block of another run
/// changes none of its answers (stats, trees, folded stacks, Parquet), while every question
/// that reads that block names it. Read blocks are still checked.
#[test]
fn a_run_is_answered_from_its_own_blocks_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("two.jsonl");
    std::fs::write(&input, two_runs_lines()).unwrap();
    let good = dir.path().join("good.ferret");
    ok!(run!("ferret-convert", &input, "-o", &good, "--quiet"));
    // One bit of a duration in run-a's third phase, between run-b's first and last records.
    let mut bytes = std::fs::read(&good).unwrap();
    bytes[2 * ferret_format::HEADER_SLOT_SIZE as usize + 128 + 5000 * 64 + 24] ^= 1;
    let damaged = dir.path().join("damaged.ferret");
    std::fs::write(&damaged, bytes).unwrap();
    let questions: [&[&str]; 4] = [
        &["--format", "json", "--limit", "0"],
        &["--tree", "--format", "json", "--limit", "5"],
        &["--folded"],
        &["--since", "-3s", "--format", "json"],
    ];
    let ask = |f: &Path, run: &str, q: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
            .arg(f)
            .args(["--run", run])
            .args(q)
            .output()
            .expect("the executable runs")
    };
    for q in questions {
        assert_eq!(
            ok!(ask(&good, "run-b", q)),
            ok!(ask(&damaged, "run-b", q)),
            "{q:?}"
        );
        fails!(
            ask(&damaged, "run-a", q),
            "checksum mismatch in records 4096..5120"
        );
    }
    let export = |f: &Path, run: &str, name: &str| {
        let out = dir.path().join(name);
        (
            run!("ferret-scan", f, "--run", run, "--to-parquet", &out),
            out,
        )
    };
    let (good_out, good_rows) = export(&good, "run-b", "good.parquet");
    ok!(good_out);
    let (damaged_out, damaged_rows) = export(&damaged, "run-b", "damaged.parquet");
    ok!(damaged_out);
    assert_eq!(parquet_rows(&good_rows), parquet_rows(&damaged_rows));
    assert_eq!(parquet_rows(&good_rows).len(), 4096);
    fails!(
        export(&damaged, "run-a", "a.parquet").0,
        "checksum mismatch"
    );
}

/// ferret-scan in the time zone `tz` (+05:30: no whole hours to hide an offset mistake).
fn scan_in(tz: &str, file: &Path, args: &[&str]) -> String {
    ok!(Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
        .env("TZ", tz)
        .arg(file)
        .args(args)
        .output()
        .unwrap())
}

/// A time as `--runs` prints it reads back as the same instant as printed, in RFC 3339 with its
/// offset or in UTC, and as a local time without an offset; a bare negative number is refused.
#[test]
fn printed_times_read_back_with_any_offset_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    let tz = "Asia/Kolkata";
    let runs = scan_in(tz, &file, &["--runs"]);
    let line = runs.lines().find(|l| l.contains("d328e006")).unwrap();
    // `  d328…  49 spans  4 errors  2026-11-26 01:37:10.485361 +05:30 .. 2026-…`
    let first = line
        .split("errors  ")
        .nth(1)
        .unwrap()
        .split(" .. ")
        .next()
        .unwrap();
    assert!(first.ends_with("+05:30"), "{first}");
    let (local, _) = first.rsplit_once(' ').unwrap();
    let at: chrono::DateTime<chrono::FixedOffset> =
        chrono::DateTime::parse_from_str(first, "%Y-%m-%d %H:%M:%S%.f %:z").unwrap();
    let forms = [
        first.to_string(),
        at.to_rfc3339(),
        at.with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string(),
        local.to_string(),
        local.replacen(' ', "T", 1),
    ];
    let spans = |args: &[&str]| -> u64 {
        let mut all = vec!["--run", "d328e006", "--format", "json", "--limit", "0"];
        all.extend(args);
        serde_json::from_str::<Value>(&scan_in(tz, &file, &all)).unwrap()["spans"]
            .as_u64()
            .unwrap()
    };
    let whole = spans(&[]);
    assert_eq!(whole, 49);
    for form in &forms {
        // The first span starts within the microsecond printed: since it, all; until it, none.
        assert_eq!(spans(&["--since", form]), whole, "--since {form}");
        assert_eq!(spans(&["--until", form]), 0, "--until {form}");
    }
    let bare = run!("ferret-scan", &file, "--since", "-600");
    fails!(bare, "-600s");
}
