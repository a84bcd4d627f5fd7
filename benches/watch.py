#!/usr/bin/env python3
"""`make bench-watch`: what a live view costs on a big trace that grows. Writes benches/WATCH.md.

A BeaverDB trace of WATCH_SPANS spans (default 6,000,000, 2.3 GB; the issue's figure is a 10 GB
trace: WATCH_SPANS=26000000) in WAL mode, as a running service keeps it, grows by WATCH_RATE
spans a second (default 50,000: rows of a larger generated trace inserted in their rowid order,
ferret-io's flush order, by a writer thread) while `ferret-scan --watch --format json --interval
10ms --window 10s --count WATCH_REFRESHES` (default 2,000) reads it. Each line says what its
refresh cost (`refresh_seconds`: the new rows added to the sidecar, the files opened, the two
windows scanned); the watcher's resident memory is sampled as it runs. Its sidecar is made before
the writer starts (the first call's conversion is `make bench-e2e`'s).
"""

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import threading
import time
from pathlib import Path

from harness import REL, ROOT, generate, stamp

SPANS = int(os.environ.get("WATCH_SPANS", 6_000_000))
RATE = int(os.environ.get("WATCH_RATE", 50_000))
REFRESHES = int(os.environ.get("WATCH_REFRESHES", 2_000))
WORK = Path(os.environ.get("BENCH_DIR", ROOT / "target" / "bench"))
# Rows the writer may need: the watch runs about REFRESHES x 40 ms at most.
GROW = RATE * max(60, REFRESHES // 25)


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ferret-cli", "-p", "ferret-gen"], cwd=ROOT, check=True)
    full = WORK / f"watch-full-{SPANS + GROW}.db"
    generate(full, "beaver1", SPANS + GROW)
    trace = WORK / "watch.db"
    for suffix in ("", "-wal", "-shm", ".ferret"):
        Path(f"{trace}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(full, trace)
    con = sqlite3.connect(trace)
    (last,) = con.execute("SELECT max(rowid) FROM beaver_logs").fetchone()
    cut = last - GROW
    con.execute("DELETE FROM beaver_logs WHERE rowid > ?", (cut,))
    con.commit()
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    size = trace.stat().st_size
    # The sidecar, made once before the trace grows.
    subprocess.run([REL / "ferret-scan", trace, "--quiet"], check=True, capture_output=True)

    stop = threading.Event()
    written = [0]
    writer = threading.Thread(target=grow, args=(trace, full, cut, stop, written))
    writer.start()
    costs, rss = watch(trace)
    stop.set()
    writer.join()
    write_page(size, costs, rss, written[0])


def grow(trace, full, cut, stop, written):
    """Inserts the full trace's rows after `cut` into `trace`, RATE a second in batches of a
    tenth of a second, until stopped or out of rows."""
    con = sqlite3.connect(trace, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("ATTACH DATABASE ? AS full", (f"file:{full}?mode=ro",))
    batch = RATE // 10
    start = time.monotonic()
    at = cut
    while not stop.is_set() and at < cut + GROW:
        con.execute(
            "INSERT INTO beaver_logs(rowid, log_name, timestamp, data) "
            "SELECT rowid, log_name, timestamp, data FROM full.beaver_logs WHERE rowid > ? AND rowid <= ?",
            (at, at + batch),
        )
        at += batch
        written[0] = at - cut
        # Batches at fixed deadlines: RATE rows a second, however long an insert took.
        deadline = start + written[0] / RATE
        time.sleep(max(0.0, deadline - time.monotonic()))
    con.close()


def watch(trace):
    """Runs the watch; returns each refresh's cost and the watcher's resident memory (KiB)
    sampled every 50 refreshes."""
    proc = subprocess.Popen(
        [REL / "ferret-scan", trace, "--watch", "--format", "json", "--interval", "10ms", "--window", "10s",
         "--count", str(REFRESHES), "--quiet"],
        stdout=subprocess.PIPE, text=True)
    costs, rss = [], []
    for i, line in enumerate(proc.stdout):
        costs.append(json.loads(line)["refresh_seconds"])
        if i % 50 == 0:
            status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            kib = lambda key: int(next(l for l in status if l.startswith(key)).split()[1])
            rss.append((kib("VmRSS:"), kib("RssAnon:")))
    if proc.wait() != 0:
        raise SystemExit("the watch failed")
    return costs, rss


def write_page(size, costs, rss, written):
    ms = sorted(c * 1000 for c in costs)
    q = lambda p: ms[min(len(ms) - 1, int(p * len(ms)))]
    tenth = max(1, len(rss) // 10)
    median_mib = lambda samples, which: statistics.median(s[which] for s in samples) / 1024
    early, late = median_mib(rss[:tenth], 0), median_mib(rss[-tenth:], 0)
    early_anon, late_anon = median_mib(rss[:tenth], 1), median_mib(rss[-tenth:], 1)
    lines = [
        "# A live view of a growing trace",
        "",
        f"{stamp('make bench-watch')} (`benches/watch.py`, part of `make bench`) · a BeaverDB trace of {SPANS:,} spans "
        f"({size / 1e9:.2f} GB, WAL mode) growing by {RATE:,} spans/s (a writer thread inserting a larger trace's rows in "
        f"their order), read by `ferret-scan --watch --format json --interval 10ms --window 10s --count {REFRESHES:,}`. "
        "A refresh adds the new rows to the sidecar, opens it again and scans the window of span ends and the one "
        "before (the issue's goal: at most 50 ms a refresh on 10 GB growing by 50k spans/s; "
        "`WATCH_SPANS=26000000 make bench-watch` is that size).",
        "",
        "| what | value |",
        "|---|---:|",
        f"| refreshes | {len(costs):,} |",
        f"| spans added by the writer meanwhile | {written:,} |",
        f"| refresh cost, median | {statistics.median(ms):.1f} ms |",
        f"| refresh cost, p90 | {q(0.9):.1f} ms |",
        f"| refresh cost, p99 | {q(0.99):.1f} ms |",
        f"| refresh cost, max | {ms[-1]:.1f} ms |",
        f"| resident memory, first tenth of the refreshes (median) | {early:.1f} MiB ({early_anon:.1f} MiB anonymous) |",
        f"| resident memory, last tenth of the refreshes (median) | {late:.1f} MiB ({late_anon:.1f} MiB anonymous) |",
        "",
        f"Goal: at most 50 ms a refresh (median here {statistics.median(ms):.1f} ms, p99 {q(0.99):.1f} ms: "
        f"{'met' if q(0.99) <= 50 else '**short** at p99' if statistics.median(ms) <= 50 else '**short**'}); "
        f"memory flat: the process's own (anonymous) memory moved {late_anon - early_anon:+.1f} MiB from the first "
        "tenth of the refreshes to the last; the rest of its resident memory is the record file's pages it maps "
        "(the page cache's, shared), which follow the window.",
    ]
    text = "\n".join(lines) + "\n"
    (ROOT / "benches" / "WATCH.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
