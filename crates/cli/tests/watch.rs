//! `--watch`: the live view's JSON lines against the spans that ended in each window, the
//! terminal view in a pseudo-terminal (drawn, quit with `q` or SIGTERM, the terminal restored),
//! and files that go missing during a watch. The live view of a real ferret-io service is
//! `live::the_watch_of_a_live_trace_counts_what_ended_in_each_window` (`make test-live`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::*;

/// The spans of the golden v2 file's record file: (name, end) of those with a duration.
fn ends_of(file: &Path) -> Vec<(String, f64)> {
    let out = ok!(run!(
        "ferret-scan",
        file,
        "--all-runs",
        "--tree",
        "--limit",
        "0",
        "--format",
        "json"
    ));
    let doc: Value = serde_json::from_str(&out).unwrap();
    let mut stack: Vec<&Value> = doc["roots"].as_array().unwrap().iter().collect();
    let mut ends = Vec::new();
    while let Some(n) = stack.pop() {
        if let Some(d) = n["duration"].as_f64() {
            let end = n["start_time"].as_f64().unwrap() + d;
            ends.push((n["name"].as_str().unwrap().to_string(), end));
        }
        stack.extend(n["children"].as_array().unwrap());
    }
    ends
}

/// The lines a watch prints.
type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// `ferret-scan FILE --watch` refreshing every 100 ms (up to 100 times) as JSON lines: the
/// process, its lines, and its stderr's lines.
fn watching(
    file: &Path,
) -> (
    std::process::Child,
    Lines,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
        .arg(file)
        .args(["--watch", "--interval", "100ms", "--count", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let errors = BufReader::new(child.stderr.take().unwrap()).lines();
    (child, lines, errors)
}

/// Off a terminal, each refresh is one JSON line whose counts are the spans that ended in its
/// window, `at` just past the latest end; `--count` stops it.
#[test]
fn json_lines_count_the_spans_that_ended_in_each_window() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("generated1.db"), dir.path());
    let out = ok!(run!(
        "ferret-scan",
        &file,
        "--all-runs",
        "--watch",
        "--interval",
        "50ms",
        "--window",
        "1s",
        "--count",
        "3"
    ));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let ends = ends_of(&file);
    let latest = ends.iter().map(|e| e.1).fold(f64::NEG_INFINITY, f64::max);
    for snap in &lines {
        let at = snap["at"].as_f64().unwrap();
        assert_eq!(at, latest.next_up());
        let mut want: std::collections::HashMap<&str, u64> = Default::default();
        for (name, end) in &ends {
            if *end >= at - 1.0 && *end < at {
                *want.entry(name).or_default() += 1;
            }
        }
        let got: std::collections::HashMap<&str, u64> = snap["functions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap(), f["count"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, want);
        assert!(!got.is_empty());
    }
}

/// A file that goes missing during a watch is named and retried; the watch goes on when it is
/// back. A file missing from the start ends the watch with exit 1.
#[test]
fn a_file_gone_during_a_watch_is_named_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("beaver1.db"), dir.path());
    let aside = dir.path().join("aside.ferret");
    let (mut child, mut lines, mut errors) = watching(&file);
    // A snapshot without what its refresh cost: the same from one refresh to the next.
    let snapshot = |line: String| {
        let mut doc: Value = serde_json::from_str(&line).unwrap();
        assert!(doc["refresh_seconds"].as_f64().unwrap() > 0.0);
        doc.as_object_mut().unwrap().remove("refresh_seconds");
        doc
    };
    let first = snapshot(lines.next().unwrap().unwrap());
    std::fs::rename(&file, &aside).unwrap();
    let said = errors.next().unwrap().unwrap();
    assert!(
        said.contains("t.ferret") && said.contains("retrying"),
        "{said}"
    );
    std::fs::rename(&aside, &file).unwrap();
    // The next lines come again, the same as before the file went.
    let next = snapshot(lines.next().unwrap().unwrap());
    assert_eq!(next, first);
    child.kill().unwrap();
    child.wait().unwrap();
    fails!(
        run!(
            "ferret-scan",
            dir.path().join("gone.db"),
            "--watch",
            "--count",
            "1"
        ),
        "gone.db"
    );
}

/// Runs the terminal view in a pseudo-terminal of 40 x 160 (Python's `pty`), waits until it
/// drew the function table, then ends it with `how` (`q` or `sigterm`); returns what the run
/// said: its exit code, what it drew, and whether the terminal was left as it was found.
fn in_a_terminal(file: &Path, how: &str) -> Value {
    let script = r#"
import json, os, pty, select, signal, struct, sys, termios, time, fcntl
binary, file, how = sys.argv[1:4]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    os.execv(binary, [binary, file, "--watch", "--interval", "200ms"])
before = termios.tcgetattr(fd)
out = b""
deadline = time.time() + 30
while b"p99 trend" not in out and time.time() < deadline:
    ready, _, _ = select.select([fd], [], [], 0.2)
    if ready:
        out += os.read(fd, 65536)
if how == "q":
    os.write(fd, b"q")
else:
    os.kill(pid, signal.SIGTERM)
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
after = termios.tcgetattr(fd)
text = out.decode("utf-8", "replace")
print(json.dumps({
    "exit": os.waitstatus_to_exitcode(status),
    "entered": "\x1b[?1049h" in text,
    "left": text.rfind("\x1b[?1049l") > text.rfind("\x1b[?1049h"),
    "restored": before[3] == after[3],
    "canonical": bool(after[3] & termios.ICANON) and bool(after[3] & termios.ECHO),
    "drew": [w for w in ["ferret-scan --watch", "spans/s", "Calls/s", "p99 trend", "db.query"] if w in text],
}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(env!("CARGO_BIN_EXE_ferret-scan"))
        .arg(file)
        .arg(how)
        .output()
        .unwrap();
    serde_json::from_str(&ok!(out)).unwrap()
}

/// The terminal view draws its header and the functions, quits on `q` and on SIGTERM with exit
/// 0, and leaves the terminal as it found it (alternate screen left, raw mode off).
#[test]
fn the_terminal_view_draws_quits_and_restores_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert(&fixture("workers/worker-0.db"), dir.path());
    for how in ["q", "sigterm"] {
        let got = in_a_terminal(&file, how);
        assert_eq!(got["exit"], 0, "{how}: {got}");
        assert_eq!(got["entered"], true, "{how}: {got}");
        assert_eq!(got["left"], true, "{how}: {got}");
        assert_eq!(got["restored"], true, "{how}: {got}");
        assert_eq!(got["canonical"], true, "{how}: {got}");
        assert_eq!(got["drew"].as_array().unwrap().len(), 5, "{how}: {got}");
    }
}

/// A trace replaced under the watch (the service restarted and wrote a new file) is followed:
/// its sidecar is made anew, the watch says so and shows the new trace, without exiting.
#[test]
fn a_trace_replaced_under_the_watch_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("service.jsonl");
    std::fs::write(&trace, write_order_lines(&fixture("beaver1.db")).concat()).unwrap();
    let (mut child, mut lines, mut errors) = watching(&trace);
    let names = |line: String| -> Vec<String> {
        let doc: Value = serde_json::from_str(&line).unwrap();
        let mut names: Vec<String> = doc["functions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    let before = names(lines.next().unwrap().unwrap());
    let replacement = dir.path().join("new.jsonl");
    let worker = fixture("workers/worker-0.db");
    std::fs::write(&replacement, write_order_lines(&worker).concat()).unwrap();
    std::fs::rename(&replacement, &trace).unwrap();
    let said = errors.next().unwrap().unwrap();
    assert!(said.contains("made anew"), "{said}");
    let after = loop {
        let now = names(lines.next().unwrap().unwrap());
        if now != before {
            break now;
        }
    };
    assert_eq!(after, ["auth.check", "db.query", "handle", "render"]);
    assert!(child.try_wait().unwrap().is_none(), "the watch goes on");
    child.kill().unwrap();
    child.wait().unwrap();
}
