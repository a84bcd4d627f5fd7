//! Writers: racing, killed while holding the lock, and a damaged last commit.

use ferret_format::SpanFile;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::process::Output;

use crate::util::*;

/// Copies of `db` as it stood at each cut (the fraction of its rowids written), nested prefixes
/// of one growing trace, each with a one-shot conversion of it to compare against.
fn rowid_snapshots(db: &Path, dir: &Path, cuts: &[f64]) -> Vec<(PathBuf, PathBuf)> {
    cuts.iter()
        .enumerate()
        .map(|(i, &cut)| {
            let snapshot = dir.join(format!("snapshot-{i}.db"));
            rowid_cut(db, &snapshot, cut);
            let one_shot = dir.join(format!("snapshot-{i}.ferret"));
            ok!(run!(
                "ferret-convert",
                &snapshot,
                "-o",
                &one_shot,
                "--quiet"
            ));
            (snapshot, one_shot)
        })
        .collect()
}

/// Starts `ferret-convert SNAPSHOT -o out --append [extra]` for each snapshot index in `order`,
/// each after a pseudo-random delay of up to 15 ms, and returns their outputs.
fn race_writers(
    snapshots: &[(PathBuf, PathBuf)],
    out: &Path,
    order: &[usize],
    seed: u64,
    extra: &[&str],
) -> Vec<Output> {
    let mut state = seed;
    let children: Vec<_> = order
        .iter()
        .map(|&i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            std::thread::sleep(std::time::Duration::from_millis((state >> 33) % 15));
            Command::new(env!("CARGO_BIN_EXE_ferret-convert"))
                .arg(&snapshots[i].0)
                .arg("-o")
                .arg(out)
                .args(["--append", "--quiet"])
                .args(extra)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// Writers racing on one output never corrupt it: each either writes or stops at once naming
/// the other writer, and the file verifies and holds one snapshot's state (snapshots are
/// prefixes of one trace, so writers that ran one after another leave the larger one). With
/// --wait every writer gets its turn and the file holds the union: the largest snapshot.
#[test]
fn racing_writers_leave_one_whole_state_and_wait_gives_the_union() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = rowid_snapshots(&fixture("generated1.db"), dir.path(), &[0.3, 0.6, 1.0]);
    let count = |f: &Path| SpanFile::open(f).unwrap().record_count();
    let states: Vec<u64> = snapshots.iter().map(|s| count(&s.1)).collect();
    let mut refused = 0;
    for round in 0..6u64 {
        let out = dir.path().join(format!("race-{round}.ferret"));
        let order = [round as usize % 3, (round as usize + 1) % 3, 2, 0, 1];
        for o in race_writers(&snapshots, &out, &order, round, &[]) {
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            if !o.status.success() {
                // Stopped by the lock, or a smaller snapshot after a larger one had landed.
                assert!(
                    err.contains("another ferret-convert is writing this file; wait for it")
                        || err.contains("the source changed since it was last converted"),
                    "{err}"
                );
                refused += u64::from(err.contains("another ferret-convert"));
            }
        }
        let file = SpanFile::open(&out).unwrap();
        assert_eq!(file.verify().unwrap(), file.record_count());
        let state = states
            .iter()
            .position(|&n| n == file.record_count())
            .expect("the file holds one snapshot's state");
        drop(file);
        ferret_benches::assert_same_spans(&out, &snapshots[state].1);
    }
    assert!(
        refused > 0,
        "no two writers overlapped; the race was not run"
    );
    // --wait: every writer waits its turn, and the largest snapshot is what stays.
    for round in 0..3u64 {
        let out = dir.path().join(format!("wait-{round}.ferret"));
        let order = [round as usize % 3, 2, (round as usize + 1) % 3, 0];
        for o in race_writers(&snapshots, &out, &order, round + 100, &["--wait"]) {
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            assert!(!err.contains("another ferret-convert"), "{err}");
            let smaller = err.contains("the source changed since it was last converted");
            assert!(o.status.success() || smaller, "{err}");
        }
        let file = SpanFile::open(&out).unwrap();
        assert_eq!(file.verify().unwrap(), states[2]);
        drop(file);
        ferret_benches::assert_same_spans(&out, &snapshots[2].1);
    }
}

/// A writer killed while it holds the lock leaves no lock behind: the next writer gets in at
/// once and completes the file.
#[test]
fn a_writer_killed_holding_the_lock_lets_the_next_in_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (input, full) = many_lines_converted(dir.path());
    let out = dir.path().join("out.ferret");
    let mut child = spawn_conversion(&input, &out);
    // Until it holds the lock: a second writer is refused.
    let started = std::time::Instant::now();
    loop {
        if !out.exists() {
            std::thread::sleep(std::time::Duration::from_millis(2));
            continue;
        }
        let second = run!("ferret-convert", &input, "-o", &out, "--append", "--quiet");
        let err = String::from_utf8_lossy(&second.stderr).to_string();
        if err.contains("another ferret-convert is writing") {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "never saw the lock held: {err}"
        );
    }
    child.kill().unwrap(); // SIGKILL: no chance to unlock
    child.wait().unwrap();
    // Without --wait: had the lock outlived the process, this would be refused.
    let next = run!("ferret-convert", &input, "-o", &out, "--append");
    ok!(next);
    ferret_benches::assert_same_records(&out, &full);
}

/// Damage inside the last commit's segment, after its header was written: readers answer from
/// the commit before it and say so once, --verify names it, and --append resumes from the
/// previous commit, ending equal to a one-shot conversion.
#[test]
fn a_damaged_last_commit_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = rowid_snapshots(&fixture("generated1.db"), dir.path(), &[0.5, 1.0]);
    let (half, whole) = (&snapshots[0], &snapshots[1]);
    let good = dir.path().join("good.ferret");
    ok!(run!("ferret-convert", &half.0, "-o", &good, "--quiet"));
    ok!(run!(
        "ferret-convert",
        &whole.0,
        "-o",
        &good,
        "--append",
        "--quiet"
    ));
    let (last, run, at) = {
        let f = SpanFile::open(&good).unwrap();
        let last = f.segments().last().unwrap().clone();
        let half_runs = ok!(run!("ferret-scan", &half.1, "--runs", "--format", "json"));
        // The first record of the last commit whose run the half already had: its question
        // reads the damaged block, and has an answer in the previous commit.
        let (at, run) = (0..last.record_count)
            .map(|i| {
                (
                    i,
                    f.string(f.record(last.first_record + i).unwrap().run)
                        .unwrap(),
                )
            })
            .find(|(_, run)| half_runs.contains(&format!("\"{run}\"")))
            .expect("a run that spans the cut");
        (last.clone(), run.to_string(), at as usize)
    };
    let half_count = SpanFile::open(&half.1).unwrap().record_count();
    assert_eq!(
        last.first_record, half_count,
        "the append is the last commit"
    );
    let bytes = std::fs::read(&good).unwrap();
    // A record byte (seen only by a scan that reads it), then the segment header (seen on open).
    let damages = [
        (
            last.offset as usize + 128 + 64 * at + 24,
            "checksum mismatch in records",
        ),
        (last.offset as usize + 20, "segment"),
    ];
    for (at, what) in damages {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        let file = dir.path().join("damaged.ferret");
        std::fs::write(&file, &bad).unwrap();
        let json = |f: &Path| {
            Command::new(env!("CARGO_BIN_EXE_ferret-scan"))
                .arg(f)
                .args(["--run", &run, "--format", "json", "--limit", "0"])
                .output()
                .unwrap()
        };
        let answered = json(&file);
        let err = String::from_utf8_lossy(&answered.stderr).to_string();
        assert_eq!(err.lines().count(), 1, "one warning: {err}");
        assert!(err.contains("warning") && err.contains(what), "{err}");
        assert!(
            err.contains(&format!("newest commit ({} spans)", last.record_count)),
            "{err}"
        );
        assert_eq!(
            ok!(answered),
            ok!(json(&half.1)),
            "the previous commit's answer"
        );
        fails!(run!("ferret-scan", &file, "--verify"), "newest commit");
        let appended = run!("ferret-convert", &whole.0, "-o", &file, "--append");
        let err = String::from_utf8_lossy(&appended.stderr).to_string();
        assert!(err.contains("appended from the commit before it"), "{err}");
        ok!(appended);
        ok!(run!("ferret-scan", &file, "--verify"));
        ferret_benches::assert_same_spans(&file, &whole.1);
    }
}
