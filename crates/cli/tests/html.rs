//! `--html`: the page whole, and rendered in a real browser.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// What headless Chromium made of a page: its DOM after the scripts ran, and the URLs the page
/// (not the browser itself) asked for, from Chromium's network log.
fn render(page: &Path, dir: &Path) -> (String, Vec<String>) {
    let netlog = dir.join("net.json");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("Debian's chromium runs (make test-browser installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: Value = serde_json::from_str(&std::fs::read_to_string(&netlog).unwrap()).unwrap();
    let start_job = &log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"];
    // The browser's own background requests have no initiating origin; the page's do.
    let fetched = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| &e["type"] == start_job && e["params"]["initiator"] != "not an origin")
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
        .collect();
    (String::from_utf8(out.stdout).unwrap(), fetched)
}

/// `--html` in a real browser (Debian's headless Chromium): the rendered function table holds
/// every function of the run with `--format json`'s numbers, the timeline chart and the flame
/// graph are drawn, a baseline adds the comparison and its differential flame graph, and the
/// page fetched nothing (a page that does fetch is caught by the same check). A screenshot is kept in
/// target/tmp/browser/report.png. Run by `make test-browser`.
#[test]
#[ignore = "needs Debian's chromium: make test-browser"]
fn the_html_page_renders_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("generated1.db"), dir.path());
    let page = dir.path().join("report.html");
    ok!(run!("ferret-scan", &file, "--html", &page));
    let (dom, fetched) = render(&page, dir.path());
    assert!(fetched.is_empty(), "the page fetched {fetched:?}");
    let json = table_json(&file, &[]);
    let want = by_key(&json["functions"], "name");
    let row =
        regex::Regex::new(r#"<tr class="function"><td class="name">(.*?)</td>(.*?)</tr>"#).unwrap();
    let value = regex::Regex::new(r#"data-v="([^"]*)""#).unwrap();
    let mut rows = 0;
    for caps in row.captures_iter(&dom) {
        let name = html_escape::decode_html_entities(&caps[1]).into_owned();
        let w = want
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} is not in the JSON"));
        let values: Vec<f64> = value
            .captures_iter(&caps[2])
            .map(|v| v[1].parse().unwrap())
            .collect();
        let fields = [
            "count",
            "total_duration",
            "avg_duration",
            "min_duration",
            "max_duration",
            "error_rate",
            "p50",
            "p90",
            "p99",
            "self_time",
        ];
        assert_eq!(
            values.len(),
            fields.len(),
            "{name}: a value for every field"
        );
        for (field, got) in fields.iter().zip(&values) {
            assert_eq!(*got, w[field].as_f64().unwrap(), "{name} {field}");
        }
        rows += 1;
    }
    assert_eq!(rows, want.len(), "every function of the run");
    // The chart: lines for p50 and p99, and the data of every bucket; the flame graph: frames.
    let timeline = json_of(run!("ferret-scan", &file, "--timeline", "--format", "json"));
    assert!(dom.contains("<polyline class=\"p99\"") && dom.contains("<polyline class=\"p50\""));
    let data = regex::Regex::new(
        r#"(?s)<script type="application/json" id="timeline-data">(.*?)</script>"#,
    )
    .unwrap();
    let embedded: Value = serde_json::from_str(&data.captures(&dom).unwrap()[1]).unwrap();
    assert_eq!(embedded["buckets"], timeline["buckets"]);
    let frames =
        regex::Regex::new(r#"id="flamegraph" data-frames="(\d+)" data-interactive="true""#)
            .unwrap();
    let drawn: usize = frames.captures(&dom).expect("the flame graph was counted")[1]
        .parse()
        .unwrap();
    assert!(drawn > 100, "{drawn} flame graph frames");
    assert!(
        dom.matches("<div class=\"tree\">").count() == 20,
        "the 20 slowest trees"
    );
    // A baseline adds the comparison, a row per function of either run.
    let compared = dir.path().join("compared.html");
    ok!(run!(
        "ferret-scan",
        &file,
        "--baseline",
        "0000000000000000000000005eed0000",
        "--html",
        &compared
    ));
    let (dom, fetched) = render(&compared, dir.path());
    assert!(
        fetched.is_empty() && dom.contains("<section id=\"comparison\">"),
        "{fetched:?}"
    );
    let verdicts = regex::Regex::new(r#"<tr class="(same|slower|faster|new|gone)">"#).unwrap();
    assert_eq!(verdicts.find_iter(&dom).count(), 191, "170 + 21 gone");
    let differential =
        regex::Regex::new(r#"id="differential" data-frames="(\d+)" data-interactive="true""#)
            .unwrap();
    let caps = differential
        .captures(&dom)
        .expect("the differential graph was drawn");
    let drawn: usize = caps[1].parse().unwrap();
    assert!(drawn > 100, "{drawn} differential frames");
    // The check sees a page that fetches.
    let fetching = dir.path().join("fetching.html");
    std::fs::write(&fetching, "<img src=\"http://ferret.invalid/x.png\">").unwrap();
    assert_eq!(
        render(&fetching, dir.path()).1,
        ["http://ferret.invalid/x.png"]
    );
    // A screenshot, kept.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("report.png");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,2000",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
}

/// The page without a browser: one file holding every part, every function of the run, no
/// reference to anything outside it; `--flamegraph` beside `--html` writes its SVG too.
#[test]
fn the_html_page_is_one_file_with_every_part() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    let (page, svg) = (dir.path().join("p.html"), dir.path().join("f.svg"));
    ok!(run!(
        "ferret-scan",
        &file,
        "--html",
        &page,
        "--flamegraph",
        &svg
    ));
    let html = std::fs::read_to_string(&page).unwrap();
    for part in ["functions", "timeline", "flamegraph", "trees"] {
        assert!(html.contains(&format!("<section id=\"{part}\">")), "{part}");
    }
    let functions = table_json(&file, &[]);
    let rows = html.matches("<tr class=\"function\">").count();
    assert_eq!(rows, functions["functions"].as_array().unwrap().len());
    let outside = regex::Regex::new(r#"(src|href|url)\s*[=(]\s*["']?(https?:)?//"#).unwrap();
    assert!(!outside.is_match(&html), "{:?}", outside.find(&html));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}
