//! Writers: holding the lock, killed at every step, replacing a file under its readers, and a
//! damaged last commit.

use ferret_format::SpanFile;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Converts the first snapshot's database into `out`, then appends the second's: two commits.
fn convert_then_append(snapshots: &[(PathBuf, PathBuf)], out: &Path) {
    ok!(run!(
        "ferret-convert",
        &snapshots[0].0,
        "-o",
        out,
        "--quiet"
    ));
    ok!(run!(
        "ferret-convert",
        &snapshots[1].0,
        "-o",
        out,
        "--append",
        "--quiet"
    ));
}

/// Runs ferret-convert with `args` and the fault-injection variables `env` (a test build kills
/// or pauses at a named step: `FERRET_FAULT`, `FERRET_PAUSE`).
fn convert_with(env: &[(&str, &str)], args: &[OsString]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferret-convert"));
    c.args(args).envs(env.iter().copied());
    c
}

/// Starts a writer paused at `step` (holding the lock), and waits until it is there.
fn paused_at(step: &str, marker: &Path, args: &[OsString]) -> std::process::Child {
    let pause = format!("{step}:{}", marker.display());
    let child = convert_with(&[("FERRET_PAUSE", &pause)], args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The writer creates the marker when it reaches the step: a rendezvous, not a delay.
    let mut child = child;
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the writer ended ({status}) before {step}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child
}

/// A writer holds the file while it writes: a second one stops at once naming it, or with
/// --wait takes its turn after it and adds what is left; a writer killed holding the lock
/// leaves no lock behind. Writers are paused at a step to meet, never raced against a clock.
#[test]
fn a_writer_holds_the_file_and_leaves_no_lock_when_killed() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = rowid_snapshots(&fixture("generated1.db"), dir.path(), &[0.5, 1.0]);
    let (half, whole) = (&snapshots[0], &snapshots[1]);
    let out = dir.path().join("out.ferret");
    let marker = dir.path().join("paused");
    let args = |db: &Path, extra: &[&str]| -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![
            db.into(),
            "-o".into(),
            out.clone().into(),
            "--append".into(),
            "--quiet".into(),
        ];
        a.extend(extra.iter().map(OsString::from));
        a
    };
    // Paused after writing its first segment: a second writer is refused at once.
    let first = paused_at("segment-written", &marker, &(args(&half.0, &[])));
    fails!(
        convert_with(&[], &(args(&whole.0, &[]))).output().unwrap(),
        "another ferret-convert is writing this file"
    );
    // With --wait it waits; let the first go on: both land, the second adding the rest.
    let waiting = convert_with(&[], &(args(&whole.0, &["--wait"])))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::remove_file(&marker).unwrap();
    ok!(first.wait_with_output().unwrap());
    ok!(waiting.wait_with_output().unwrap());
    ferret_benches::assert_same_spans(&out, &whole.1);
    // Killed (SIGKILL) while paused holding the lock: the next writer gets in without --wait.
    std::fs::remove_file(&out).unwrap();
    let mut held = paused_at("before-header", &marker, &(args(&whole.0, &[])));
    held.kill().unwrap();
    held.wait().unwrap();
    std::fs::remove_file(&marker).unwrap();
    ok!(convert_with(&[], &(args(&whole.0, &[]))).output().unwrap());
    ferret_benches::assert_same_spans(&out, &whole.1);
}

/// Kills a writer (SIGKILL, from the writer itself at a named step) in every kind of write and
/// at every step of a commit, a replacement and an undo: the file always opens and verifies,
/// holds the old state or a newer whole one, and the next writer gets in at once, never blocked
/// and never panicking, and ends where an unbroken run would have.
#[test]
fn a_writer_killed_at_any_step_leaves_a_whole_file_and_no_lock() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let lines = many_json_lines(100);
    let all: Vec<&str> = lines.lines().collect();
    let half = dir.path().join("half.jsonl");
    std::fs::write(&half, all[..all.len() / 2].join("\n") + "\n").unwrap();
    let full = dir.path().join("full.jsonl");
    std::fs::write(&full, lines.clone()).unwrap();
    let want = dir.path().join("want.ferret");
    ok!(run!("ferret-convert", &full, "-o", &want, "--quiet"));
    let out = dir.path().join("out.ferret");
    let convert = |fault: Option<&str>, input: &Path, extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferret-convert"));
        c.arg(input)
            .arg("-o")
            .arg(&out)
            .args(["--quiet", "--commit-every", "700"]);
        c.args(extra);
        if let Some(f) = fault {
            c.env("FERRET_FAULT", f);
        }
        c.output().unwrap()
    };
    let digest_of = |p: &Path| {
        std::fs::read(p)
            .ok()
            .map(|b| xxhash_rust::xxh3::xxh3_64(&b))
    };
    // (what the killed writer does, its step, what the next writer runs)
    let cases: [(&str, &str, &[&str]); 11] = [
        ("fresh", "segment-written:3", &["--append"]),
        ("fresh", "before-header:2", &["--append"]),
        ("fresh", "header-written:3", &["--append"]),
        ("append", "segment-written:2", &["--append"]),
        ("append", "header-written:1", &["--append"]),
        ("force", "segment-written:2", &["--force"]),
        ("force", "before-rename", &["--force"]),
        ("strict", "before-rename", &["--append"]),
        ("set-aside", "before-rename", &["--append"]),
        ("set-aside", "segment-written:1", &["--append"]),
        ("fresh", "before-header:1", &["--append"]),
    ];
    for (kind, step, next) in cases {
        let what = format!("{kind} killed at {step}");
        let _ = std::fs::remove_file(&out);
        // The state before the killed writer: none, half the trace, or half with its last
        // commit damaged.
        if kind != "fresh" {
            ok!(convert(None, &half, &[]));
        }
        if kind == "set-aside" {
            let f = SpanFile::open(&out).unwrap();
            let last = f.segments().last().unwrap().clone();
            drop(f);
            let mut bytes = std::fs::read(&out).unwrap();
            bytes[last.offset as usize + 128 + 24] ^= 0x10;
            std::fs::write(&out, bytes).unwrap();
        }
        let before = digest_of(&out);
        let killed = match kind {
            "force" => convert(Some(step), &full, &["--force"]),
            // A bad last line after every good one: --strict undoes what this run committed.
            "strict" => {
                let bad = dir.path().join("bad.jsonl");
                std::fs::write(&bad, lines.clone() + "not json\n").unwrap();
                convert(Some(step), &bad, &["--append", "--strict"])
            }
            "fresh" => convert(Some(step), &full, &[]),
            _ => convert(Some(step), &full, &["--append"]),
        };
        assert_eq!(killed.status.signal(), Some(9), "{what}: {killed:?}");
        // Whatever the file holds now opens and verifies (but the damage a set-aside was about
        // to leave behind, when it was killed before).
        let f = SpanFile::open(&out).unwrap_or_else(|e| panic!("{what}: {e}"));
        match f.verify() {
            Ok(n) => assert_eq!(n, f.record_count(), "{what}"),
            Err(ferret_format::FormatError::NewestCommitDamaged { .. }) if kind == "set-aside" => {}
            Err(e) => panic!("{what}: {e}"),
        }
        drop(f);
        // A replacement never touched the old file; a --strict append killed while undoing its
        // commits leaves them (a newer whole state), as a kill before the undo would.
        if kind == "force" || (kind == "set-aside" && step == "before-rename") {
            assert_eq!(digest_of(&out), before, "{what}: the old file is as it was");
        }
        // The next writer gets in at once (no --wait) and completes the file.
        let done = convert(None, &full, next);
        assert!(
            done.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        ok!(run!("ferret-scan", &out, "--verify"));
        ferret_benches::assert_same_spans(&out, &want);
        let stale = dir.path().join(".out.ferret.ferret-new");
        assert!(!stale.exists(), "{what}: a replacement left behind");
    }
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

/// A reader keeps the file it opened, every byte of it, whatever a writer does to the path
/// meanwhile: a sidecar made anew, `--force`, a failed conversion, a damaged commit set aside,
/// a `--strict` append undone. The reader here is this process, mapping the file before the
/// writer runs and reading all of it after (where truncating in place would kill it with
/// SIGBUS); the old file itself stays as it was when the writer fails.
#[test]
fn readers_keep_the_file_they_opened_whatever_a_writer_does() {
    let dir = tempfile::tempdir().unwrap();
    let mapped = |p: &Path| {
        let f = SpanFile::open(p).unwrap();
        let n = f.record_count();
        (f, n)
    };
    let read_all = |f: &SpanFile<memmap2::Mmap>, n: u64, what: &str| {
        assert_eq!(f.verify().unwrap(), n, "{what}: the reader's file is whole");
    };
    // A sidecar made anew because its trace was replaced by another program's run.
    let trace = dir.path().join("trace.db");
    std::fs::copy(fixture("generated1.db"), &trace).unwrap();
    ok!(run!("ferret-scan", &trace, "--runs"));
    let sidecar = dir.path().join("trace.db.ferret");
    let (reader, n) = mapped(&sidecar);
    let next = dir.path().join("next.db");
    std::fs::copy(fixture("beaver1.db"), &next).unwrap();
    std::fs::rename(&next, &trace).unwrap();
    let rebuilt = run!("ferret-scan", &trace, "--runs");
    assert!(String::from_utf8_lossy(&rebuilt.stderr).contains("made anew"));
    read_all(&reader, n, "sidecar made anew");
    assert_ne!(SpanFile::open(&sidecar).unwrap().record_count(), n);
    // --force onto a file being read, then a --force that fails: the old file untouched.
    let out = dir.path().join("out.ferret");
    ok!(run!(
        "ferret-convert",
        fixture("generated1.db"),
        "-o",
        &out,
        "--quiet"
    ));
    let (reader, n) = mapped(&out);
    ok!(run!(
        "ferret-convert",
        fixture("beaver1.db"),
        "-o",
        &out,
        "--force",
        "--quiet"
    ));
    read_all(&reader, n, "--force");
    let before = std::fs::read(&out).unwrap();
    let (reader, n) = mapped(&out);
    fails!(
        run!(
            "ferret-convert",
            fixture("beaver1.db"),
            "-o",
            &out,
            "--force",
            "--namespace",
            "typo"
        ),
        "namespace \"typo\" not found"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "a failed --force changes nothing"
    );
    read_all(&reader, n, "failed --force");
    // A damaged newest commit set aside by an append.
    let snapshots = rowid_snapshots(&fixture("generated1.db"), dir.path(), &[0.5, 1.0]);
    let set_aside = dir.path().join("set-aside.ferret");
    convert_then_append(&snapshots, &set_aside);
    let last = SpanFile::open(&set_aside)
        .unwrap()
        .segments()
        .last()
        .unwrap()
        .clone();
    let mut bytes = std::fs::read(&set_aside).unwrap();
    bytes[last.offset as usize + 128 + 24] ^= 0x10;
    std::fs::write(&set_aside, bytes).unwrap();
    let reader = SpanFile::open(&set_aside).unwrap();
    assert!(
        reader.fallback().is_none(),
        "the damage shows only in its block's checksum"
    );
    ok!(run!(
        "ferret-convert",
        &snapshots[1].0,
        "-o",
        &set_aside,
        "--append",
        "--quiet"
    ));
    // Every block of the reader's file reads, the damaged one failing its checksum only.
    for seg in reader.segments() {
        let checked = reader.verify_blocks(seg, 0..seg.block_count());
        assert_eq!(
            checked.is_err(),
            seg.index == last.index,
            "segment {}",
            seg.index
        );
    }
    ferret_benches::assert_same_spans(&set_aside, &snapshots[1].1);
    // A --strict append undone after it committed: the reader mapped its commits, paused at the
    // undo's rename.
    // Enough lines past the half for a batch to commit before the bad line is read.
    let lines = many_json_lines(100);
    let half = dir.path().join("half.jsonl");
    let cut = lines[..lines.len() / 2].rfind('\n').unwrap() + 1;
    std::fs::write(&half, &lines[..cut]).unwrap();
    let (strict, half_once) = (
        dir.path().join("strict.ferret"),
        dir.path().join("h.ferret"),
    );
    ok!(run!("ferret-convert", &half, "-o", &strict, "--quiet"));
    ok!(run!("ferret-convert", &half, "-o", &half_once, "--quiet"));
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, lines + "not json\n").unwrap();
    let marker = dir.path().join("paused");
    let args: Vec<OsString> = vec![
        bad.clone().into(),
        "-o".into(),
        strict.clone().into(),
        "--append".into(),
        "--strict".into(),
        "--commit-every".into(),
        "1000".into(),
    ];
    let undoing = paused_at("before-rename", &marker, &args);
    let (reader, n) = mapped(&strict);
    assert!(n > SpanFile::open(&half_once).unwrap().record_count());
    std::fs::remove_file(&marker).unwrap();
    let undone = undoing.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&undone.stderr).contains("nothing was written"));
    read_all(&reader, n, "--strict undone");
    ferret_benches::assert_same_spans(&strict, &half_once);
}

/// An append that adds nothing commits nothing: the commit before the newest stays the one a
/// damaged newest commit falls back to.
#[test]
fn an_empty_append_keeps_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = rowid_snapshots(&fixture("generated1.db"), dir.path(), &[0.5, 1.0]);
    let out = dir.path().join("out.ferret");
    convert_then_append(&snapshots, &out);
    let header = |p: &Path| std::fs::read(p).unwrap()[..8192].to_vec();
    let before = header(&out);
    for _ in 0..3 {
        ok!(run!(
            "ferret-convert",
            &snapshots[1].0,
            "-o",
            &out,
            "--append",
            "--quiet"
        ));
    }
    assert_eq!(header(&out), before, "three empty appends wrote no header");
    let last = SpanFile::open(&out)
        .unwrap()
        .segments()
        .last()
        .unwrap()
        .clone();
    let mut bytes = std::fs::read(&out).unwrap();
    bytes[last.offset as usize + 128 + 24] ^= 0x10;
    std::fs::write(&out, bytes).unwrap();
    let scanned = run!("ferret-scan", &out, "--limit", "1");
    let err = String::from_utf8_lossy(&scanned.stderr).to_string();
    assert!(err.contains("answering from the commit before it"), "{err}");
    ok!(scanned);
}
