#!/usr/bin/env python3
"""`make bench-live`: what exactness on live traces costs. Writes benches/LIVE.md.

- `--append` of 1% new rows onto a BENCH_SPANS-span trace (default 6,000,000): the database as it
  stood at 99% of its rowids (ferret-gen inserts rows in ferret-io's flush order, children first,
  so a rowid cut is what a live file held), converted, then the whole database appended; beside
  a full conversion of the whole database, in the same run.
- Deep chains of CHAIN_SPANS spans (default 100,000) as JSON lines, in start order (parents
  first) and in write order (the deepest span first, as ferret-io writes a recursion): convert,
  `--tree`, `--folded`, `--to-parquet`.
- FERRET_BASELINE=REV, a git revision (`make bench-live` gives the commit before the last round
  of work): its tree is exported and built under BENCH_DIR, and named in the page by its commit;
  the full conversion, the table scan of the same trace, and the table of a one-run trace of
  WHOLE_SPANS spans (default 3,000,000: every block is read) with both builds, run by run
  alternately, so that the ratio is side by side.

Each time is the best of BENCH_RUNS runs (default 5; 3 for commands of several seconds).
"""

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from harness import REL, ROOT, generate, measured, stamp, warm

SPANS = int(os.environ.get("BENCH_SPANS", 6_000_000))
CHAIN = int(os.environ.get("CHAIN_SPANS", 100_000))
WHOLE_SPANS = int(os.environ.get("WHOLE_SPANS", 3_000_000))
WORK = Path(os.environ.get("BENCH_DIR", ROOT / "target" / "bench"))
RUNS = int(os.environ.get("BENCH_RUNS", 5))
LONG_RUNS = min(RUNS, 3)
BASELINE = os.environ.get("FERRET_BASELINE")


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ferret-cli", "-p", "ferret-gen", "-p", "ferret-benches"],
                   cwd=ROOT, check=True)
    rows = []  # (what, seconds, peak MiB, note)
    rows += append_one_percent()
    rows += deep_chains()
    baseline = None
    if BASELINE:
        base, baseline = baseline_build(BASELINE)
        rows += against_baseline(base)
    write_results(rows, baseline)


def baseline_build(rev):
    """The release binaries of git revision `rev`, built from its exported tree (once), and
    its commit."""
    sha = subprocess.run(["git", "rev-parse", "--short=9", rev], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    tree = WORK / f"baseline-{sha}"
    binaries = tree / "target" / "release"
    if not (binaries / "ferret-scan").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "ferret-cli"], cwd=tree, check=True)
    return binaries, sha


def append_one_percent():
    db = WORK / "trace.db"
    generate(db, "beaver1", SPANS)
    snapshot = WORK / "trace-99.db"
    shutil.copyfile(db, snapshot)
    con = sqlite3.connect(snapshot)
    (max_rowid,) = con.execute("SELECT max(rowid) FROM beaver_logs").fetchone()
    cut = int(max_rowid * 0.99)
    con.execute("DELETE FROM beaver_logs WHERE rowid > ?", (cut,))
    con.commit()
    con.close()
    full, base, grown = WORK / "full.ferret", WORK / "trace-99.ferret", WORK / "grown.ferret"
    subprocess.run([REL / "ferret-convert", snapshot, "-o", base, "--force", "--quiet"], check=True)
    new_rows = max_rowid - cut

    def fresh_copy():
        # Made durable here: else the append's own fsync would write back the whole copy.
        shutil.copyfile(base, grown)
        with open(grown, "rb+") as f:
            os.fsync(f.fileno())
        warm(db)
        warm(grown)

    t_full, m_full = measured([REL / "ferret-convert", db, "-o", full, "--force", "--quiet"], LONG_RUNS, lambda: warm(db))
    t_app, m_app = measured([REL / "ferret-convert", db, "-o", grown, "--append", "--quiet"], RUNS, fresh_copy)
    # The appended file gives the same answers as the full one.
    tables = [subprocess.run([REL / "ferret-scan", f, "--format", "json", "--limit", "0"], capture_output=True,
                             text=True, check=True).stdout for f in (full, grown)]
    assert tables[0] == tables[1], "the appended file's table differs from the full conversion's"
    return [
        (f"ferret-convert, whole trace ({SPANS:,} spans)", t_full, m_full, f"{SPANS / t_full / 1e6:.2f}M spans/s"),
        (f"ferret-convert --append of the last 1% ({new_rows:,} rows)", t_app, m_app,
         f"{t_app / t_full * 100:.1f}% of the whole conversion; the table equals the full conversion's"),
    ]


def chain_lines(order):
    ids = [f"{0xc0de00000000 + i:032x}" for i in range(CHAIN)]
    indices = range(CHAIN) if order == "start" else reversed(range(CHAIN))
    out = []
    for i in indices:
        parent = "null" if i == 0 else f'"{ids[i - 1]}"'
        start = 1.7e9 + i * 1e-6
        duration = (CHAIN - i) * 1e-5
        out.append(f'{{"span_id":"{ids[i]}","parent_id":{parent},"run_id":"chain","name":"f{i % 3}",'
                   f'"start_time":{start!r},"end_time":{start + duration!r},"duration":{duration!r},'
                   f'"tags":{{}},"status":"ok"}}\n')
    return "".join(out)


def deep_chains():
    rows = []
    for order in ("start", "write"):
        lines = WORK / f"chain-{order}.jsonl"
        lines.write_text(chain_lines(order))
        rec = WORK / f"chain-{order}.ferret"
        label = f"{CHAIN:,}-deep chain in {order} order"
        t, m = measured([REL / "ferret-convert", lines, "-o", rec, "--force", "--quiet"], RUNS, lambda: warm(lines))
        rows.append((f"{label}: ferret-convert", t, m, ""))
        for what, extra in (("--tree", ["--tree"]), ("--folded", ["--folded"]),
                            ("--to-parquet", ["--to-parquet", WORK / f"chain-{order}.parquet"])):
            t, m = measured([REL / "ferret-scan", rec] + extra, RUNS, lambda: warm(rec))
            rows.append((f"{label}: ferret-scan {what}", t, m, ""))
    return rows


def against_baseline(base):
    db = WORK / "trace.db"
    one = WORK / "one-run.jsonl"
    generate(one, "jsonl", WHOLE_SPANS, runs=1)
    # Each build scans its own conversion (a build before version 2 reads no version 2 file).
    ones = {REL: WORK / "one-new.ferret", base: WORK / "one-old.ferret"}
    for build, out in ones.items():
        subprocess.run([build / "ferret-convert", one, "-o", out, "--force", "--quiet"], check=True)
    rows = []
    pairs = {
        "ferret-convert": (lambda b, out: [b / "ferret-convert", db, "-o", out, "--force", "--quiet"], db, LONG_RUNS),
        "ferret-scan table": (lambda b, out: [b / "ferret-scan", out], None, RUNS),
        f"ferret-scan table of a one-run trace ({WHOLE_SPANS:,} spans, every block read)":
            (lambda b, out: [b / "ferret-scan", ones[b]], None, RUNS),
    }
    outs = {REL: WORK / "side-new.ferret", base: WORK / "side-old.ferret"}
    best = {}
    for name, (cmd, src, runs) in pairs.items():
        for _ in range(runs):
            for build in (base, REL):  # alternately, run by run
                target = cmd(build, outs[build])
                t, m = measured(target, 1, lambda: warm(src or target[1]))
                key = (name, build)
                best[key] = min(best.get(key, (t, m)), (t, m))
        (t_old, m_old), (t_new, m_new) = best[(name, base)], best[(name, REL)]
        rows.append((f"{name}: baseline build", t_old, m_old, ""))
        rows.append((f"{name}: this build", t_new, m_new, f"{t_new / t_old * 100 - 100:+.1f}% time against the baseline"))
    return rows


def write_results(rows, baseline):
    against = (f" The baseline build is commit {baseline} (`FERRET_BASELINE={BASELINE}`), built from its own tree."
               if baseline else " No baseline build was given (FERRET_BASELINE).")
    lines = [
        "# Live traces: what exactness costs",
        "",
        f"{stamp(f'make bench-live FERRET_BASELINE={BASELINE}' if BASELINE else 'make bench-live')} (`benches/live.py`, "
        f"part of `make bench`). Each time is the best of {RUNS} runs ({LONG_RUNS} for commands of several seconds), "
        f"warm page cache; times and peak RSS are each command's own (the `peak-rss` launcher).{against}",
        "",
        "| what | seconds | peak RSS MiB | note |",
        "|---|---:|---:|---|",
    ]
    for what, t, m, note in rows:
        lines.append(f"| {what} | {t:.3f} | {'' if m is None else f'{m:.0f}'} | {note} |")
    lines.append("")
    (ROOT / "benches" / "LIVE.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
