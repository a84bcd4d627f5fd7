#!/usr/bin/env python3
"""End-to-end comparison for `make bench`: ferret against the tools users would otherwise use,
on the same generated spans, side by side in one run. Writes benches/RESULTS.md.

Also `ferret-scan trace.db` straight on a FERRET_SPANS-span database: the first call (it
converts into the sidecar), a later one after nothing changed, and the scan of the sidecar alone.
And the questions of a long-running service on a RUNS_SPANS-span trace of 40 runs (default
30,000,000 spans, about 2 GB of records): `--runs`, one run's table, the default run's,
`--since -5m`, one run's timeline and trees, and `--verify`, against a plain mmap read of the
whole file (`mmap-ceiling`), all as whole processes, in the same run. And the reports:
`--timeline`, the `--html` page against the scans it is made of, and `--baseline`.

Every ratio is of like quantities measured in this run: a throughput is the bytes a command
actually reads (the records of the run it asks about) over its time, a ceiling comparison pits
a whole process against a whole process reading the same bytes, and `--run R` asks about a run
that is not the default one.

And a service's workers: 8 files of MANY_SPANS / 8 spans as one population against one file of
MANY_SPANS (default 6,000,000).

Environment: BENCH_SPANS (default 6,000,000), FERRET_SPANS (ferret-io's size, default 1,000,000),
BENCH_DIR (scratch, default target/bench), BENCH_RUNS (runs of each short command, default 5;
commands of several seconds run 3 times, sqlite3 and ferret-io once; the best run counts). Each
peer is skipped with a printed reason when it
cannot be installed. Cold runs evict only this benchmark's own files (posix_fadvise DONTNEED);
warm runs read their input through first, ours and the peers' alike.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

from harness import REL, ROOT, evict, file_huge_pages_mb, generate, measured, resident_bytes, stamp, venv_python, warm

SPANS = int(os.environ.get("BENCH_SPANS", 6_000_000))
FERRET_SPANS = int(os.environ.get("FERRET_SPANS", 1_000_000))
WORK = Path(os.environ.get("BENCH_DIR", ROOT / "target" / "bench"))
RUNS = int(os.environ.get("BENCH_RUNS", 5))
LONG_RUNS = min(RUNS, 3)
RUNS_SPANS = int(os.environ.get("RUNS_SPANS", 30_000_000))
MANY_SPANS = int(os.environ.get("MANY_SPANS", 6_000_000))
RUN = "0000000000000000000000005eed0002"  # the generator's last run: ferret's default
OTHER_RUN = "0000000000000000000000005eed0000"  # its first: not the default


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ferret-cli", "-p", "ferret-gen", "-p", "ferret-benches"], cwd=ROOT, check=True)
    db, jsonl, rec = WORK / "trace.db", WORK / "trace.jsonl", WORK / "trace.ferret"
    rows = []  # (what, seconds, peak MiB, note)
    run_bytes = {}  # run id: bytes of its records, what a question about it reads

    generate(db, "beaver1", SPANS)
    generate(jsonl, "jsonl", SPANS)
    t, m = measured([REL / "ferret-convert", db, "-o", rec, "--force", "--quiet"], LONG_RUNS, lambda: warm(db))
    rows.append(("ferret-convert (BeaverDB → records)", t, m, f"{SPANS / t / 1e6:.2f}M spans/s"))
    export = WORK / "export.parquet"
    t, m = measured([REL / "ferret-scan", rec, "--all-runs", "--to-parquet", export], LONG_RUNS, lambda: warm(rec))
    rows.append(("ferret-scan --to-parquet --all-runs", t, m, f"{SPANS / t / 1e6:.2f}M spans/s"))
    listed = json.loads(subprocess.run([REL / "ferret-scan", rec, "--runs", "--format", "json"],
                                       capture_output=True, text=True, check=True).stdout)
    run_bytes = {r["run_id"]: r["spans"] * 64 for r in listed}
    # (label, arguments, the run it reads)
    scans = [
        ("ferret-scan table (the default run)", [], RUN),
        ("ferret-scan --run R --format json (another run)", ["--run", OTHER_RUN, "--format", "json"], OTHER_RUN),
        ("ferret-scan --tree (the default run)", ["--tree"], RUN),
        ("ferret-scan --format json --limit 0 (the default run)", ["--format", "json", "--limit", "0"], RUN),
    ]
    for cache in ("warm", "cold"):
        before = (lambda: evict(rec)) if cache == "cold" else (lambda: warm(rec))
        for name, extra, run in scans:
            if cache == "warm":
                measured([REL / "ferret-scan", rec] + extra)  # warm the cache
            t, m = measured([REL / "ferret-scan", rec] + extra, RUNS, before)
            read = run_bytes[run]
            rows.append((f"{name} ({cache})", t, m, f"{read / t / 1e9:.2f} GB/s of the run's {read / 1e6:.0f} MB of records"))

    # sqlite3 with json_extract over the source database.
    sql = ("SELECT json_extract(data,'$.name') n, count(*), sum(json_extract(data,'$.duration')), "
           "min(json_extract(data,'$.duration')), max(json_extract(data,'$.duration')) FROM beaver_logs "
           f"WHERE log_name='_ferret_trace' AND json_extract(data,'$.run_id')='{RUN}' GROUP BY n ORDER BY 3 DESC LIMIT 20")
    if subprocess.run(["which", "sqlite3"], capture_output=True).returncode == 0:
        t, m = measured(["sqlite3", db, sql], 1, lambda: warm(db))
        rows.append(("sqlite3 json_extract GROUP BY (warm)", t, m, ""))
    else:
        print("skipping sqlite3: not installed")

    duck = venv_python(WORK, "duckdb-venv", ["duckdb"])
    if duck:
        parquet = WORK / "trace.parquet"
        t, m = measured([duck, "-c", f"import duckdb; duckdb.sql(\"COPY (SELECT * FROM read_json_auto('{jsonl}')) TO '{parquet}' (FORMAT parquet)\")"], LONG_RUNS, lambda: warm(jsonl))
        rows.append(("DuckDB JSON lines → Parquet (whole process)", t, m, f"{SPANS / t / 1e6:.2f}M spans/s"))
        agg = ("SELECT name, count(*), sum(duration), avg(duration), min(duration), max(duration), "
               "sum(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END) FROM {src} "
               f"WHERE run_id = '{RUN}' GROUP BY name ORDER BY 3 DESC LIMIT 20")
        for label, src, path in (("JSON lines", f"read_json_auto('{jsonl}')", jsonl), ("Parquet", f"'{parquet}'", parquet)):
            code = f"import duckdb; duckdb.sql(\"{agg.format(src=src)}\").fetchall()"
            measured([duck, "-c", code])
            t, m = measured([duck, "-c", code], RUNS, lambda: warm(path))
            rows.append((f"DuckDB over {label} (warm, whole process)", t, m, ""))
        t, m = check_documented_query(duck, "duckdb", export, rec)
        rows.append(("DuckDB: docs/SCALE-OUT.md table query over our export (warm)", t, m, "equals ferret-scan's numbers"))
    fusion = venv_python(WORK, "datafusion-venv", ["datafusion"])
    if fusion:
        t, m = check_documented_query(fusion, "datafusion", export, rec)
        rows.append(("DataFusion: docs/SCALE-OUT.md table query over our export (warm)", t, m, "equals ferret-scan's numbers"))

    ferret = venv_python(WORK, "ferret-io-venv", ["ferret-io==0.3.1", "beaver-db==1.3.0"])
    if ferret:
        small = WORK / "trace-ferret-io.db"
        generate(small, "beaver1", FERRET_SPANS)
        small_rec = WORK / "trace-ferret-io.ferret"
        measured([REL / "ferret-convert", small, "-o", small_rec, "--force", "--quiet"])
        measured([REL / "ferret-scan", small_rec])
        t, m = measured([REL / "ferret-scan", small_rec], RUNS)
        rows.append((f"ferret-scan table at {FERRET_SPANS:,} spans (warm)", t, m, ""))
        t, m = measured([ferret.parent / "ferret", "analyze", small], 1, lambda: warm(small))
        rows.append((f"ferret-io `ferret analyze` at {FERRET_SPANS:,} spans", t, m, ""))

    rows += sidecar_calls()
    rows += whole_file_against_the_ceiling()
    rows += many_files()
    write_results(rows, scan_vs_ceiling(), selective_questions(), reports(rec))


def documented_sql(heading):
    """The first SQL block after `heading` in docs/SCALE-OUT.md."""
    doc = (ROOT / "docs" / "SCALE-OUT.md").read_text()
    return doc.split(heading, 1)[1].split("```sql", 1)[1].split("```", 1)[0]


def check_documented_query(python, engine, export, rec):
    """Runs docs/SCALE-OUT.md's table query for `engine` (duckdb or datafusion) on the export,
    timed, and checks its numbers against ferret-scan's."""
    if engine == "duckdb":
        sql = documented_sql("<!-- duckdb-table").replace("FILE", str(export)).replace("RUN", RUN)
        code = ("import duckdb, json, sys; r = duckdb.sql(%r); "
                "json.dump([dict(zip(r.columns, row)) for row in r.fetchall()], sys.stdout)" % sql)
    else:
        create, query = documented_sql("### DataFusion").split(";", 1)
        create = create.replace("/data/traces/", str(export))
        query = query.replace("RUN", RUN).strip().rstrip(";")
        code = ("import datafusion, json, sys; ctx = datafusion.SessionContext(); ctx.sql(%r).collect(); "
                "json.dump(ctx.sql(%r).to_pylist(), sys.stdout)" % (create, query))
    measured([python, "-c", code])
    t, m = measured([python, "-c", code], RUNS, lambda: warm(export))
    got = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)
    want = json.loads(subprocess.run([REL / "ferret-scan", rec, "--run", RUN, "--format", "json"],
                                     capture_output=True, text=True, check=True).stdout)["functions"]
    def close(a, b):
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-300)
    assert len(got) == len(want), (engine, len(got), len(want))
    for g, w in zip(got, want):
        for key in ("name", "count", "error_count"):
            assert g[key] == w[key], (engine, key, g, w)
        for key in ("total_duration", "avg_duration", "min_duration", "max_duration", "self_time"):
            assert close(g[key], w[key]), (engine, w["name"], key, g[key], w[key])
    print(f"the documented {engine} query over the export equals ferret-scan's table")
    return t, m


def criterion_lines():
    """The stats pass against the ceiling, from the last `cargo bench -p ferret-benches` run."""
    group = ROOT / "target" / "criterion" / "scan_2M_records"
    def gib_s(name):
        p = group / name / "new" / "estimates.json"
        if not p.exists():
            return None
        ns = json.loads(p.read_text())["mean"]["point_estimate"]
        return 2_000_000 * 64 / (ns / 1e9) / 2**30
    ceiling = gib_s("ceiling_plain_parallel_read")
    if ceiling is None:
        return ["- stats pass ≥ 50% of the mmap ceiling: no criterion results (run `make bench`)", ""]
    lines = []
    for name, label in (("stats_verified", "stats pass, checksums checked"),
                        ("stats_unverified", "stats pass, --no-verify"),
                        ("top_10_trees", "--tree --limit 10 (top-N heap + gather)")):
        v = gib_s(name)
        if v is not None:
            verdict = "" if name == "top_10_trees" else (": met" if v >= ceiling / 2 else ": **short**")
            lines.append(f"- {label}: {v:.1f} GiB/s = {v / ceiling * 100:.0f}% of the ceiling's {ceiling:.1f} GiB/s"
                         + (f" (target ≥ 50%{verdict})" if verdict else ""))
    lines.append("  (criterion `scan_2M_records`, 2M records in the page cache, both cores, the same run)")
    json_group = ROOT / "target" / "criterion" / "json"
    ns = {}
    for name in ("parse_span", "parse_span_general"):
        p = json_group / name / "new" / "estimates.json"
        if p.exists():
            ns[name] = json.loads(p.read_text())["mean"]["point_estimate"]
    if len(ns) == 2:
        lines.append(f"- one span's JSON: pydantic's compact shape (the fast path) {ns['parse_span']:.0f} ns, "
                     f"the same span spaced (serde_json) {ns['parse_span_general']:.0f} ns: "
                     f"{ns['parse_span_general'] / ns['parse_span']:.2f}× (criterion `json`, the same run)")
    return lines + [""]


def whole_file_against_the_ceiling():
    """The table of a one-run trace (every block read) against a plain mmap read of the same
    file, both whole processes, warm, in the same run: like against like."""
    one_run = WORK / "trace-1run.jsonl"
    generate(one_run, "jsonl", 2_000_000, runs=1)
    rec = WORK / "trace-1run.ferret"
    subprocess.run([REL / "ferret-convert", one_run, "-o", rec, "--force", "--quiet"], check=True)
    measured([REL / "ferret-scan", rec])
    scan, scan_mib = measured([REL / "ferret-scan", rec], RUNS, lambda: warm(rec))
    read, read_mib = measured([REL / "mmap-ceiling", rec], RUNS, lambda: warm(rec))
    size = rec.stat().st_size
    return [
        (f"one-run trace ({size / 1e6:.0f} MB): ferret-scan table, whole process", scan, scan_mib,
         f"{size / scan / 1e9:.2f} GB/s; {read / scan * 100:.0f}% of the plain read's speed"),
        (f"one-run trace ({size / 1e6:.0f} MB): plain mmap read, whole process", read, read_mib,
         f"{size / read / 1e9:.2f} GB/s"),
    ]


def many_files():
    """A service's workers: 8 files of MANY_SPANS / 8 spans each (one run each, their own seeds)
    as one population, against one file of MANY_SPANS spans in one run: the table of each,
    whole processes, warm, in the same run (the population issue's goal: within 1.2×)."""
    total = MANY_SPANS
    workers = []
    for n in range(8):
        lines = WORK / f"worker-{n}.jsonl"
        generate(lines, "jsonl", total // 8, runs=1, seed=100 + n)
        rec = WORK / f"worker-{n}.ferret"
        if not rec.exists() or rec.stat().st_mtime < lines.stat().st_mtime:
            subprocess.run([REL / "ferret-convert", lines, "-o", rec, "--force", "--quiet"], check=True)
        workers.append(rec)
    one_lines = WORK / "one-file.jsonl"
    generate(one_lines, "jsonl", total, runs=1, seed=99)
    one = WORK / "one-file.ferret"
    if not one.exists() or one.stat().st_mtime < one_lines.stat().st_mtime:
        subprocess.run([REL / "ferret-convert", one_lines, "-o", one, "--force", "--quiet"], check=True)
    measured([REL / "ferret-scan"] + workers)
    # In alternation, the best of each: this machine's speed drifts between blocks of runs.
    pairs = [(measured([REL / "ferret-scan"] + workers, 1, lambda: warm(*workers)),
              measured([REL / "ferret-scan", one], 1, lambda: warm(one))) for _ in range(RUNS)]
    many, many_mib = min(p[0][0] for p in pairs), max(p[0][1] for p in pairs)
    single, single_mib = min(p[1][0] for p in pairs), max(p[1][1] for p in pairs)
    ratio = many / single
    return [
        (f"ferret-scan of 8 worker files × {total // 8:,} spans as one population (warm)", many, many_mib,
         f"{ratio:.2f}× one file of {total:,} (goal ≤ 1.2×){'' if ratio <= 1.2 else ' (**short**)'}"),
        (f"ferret-scan of one file of {total:,} spans, one run (warm)", single, single_mib, ""),
    ]


def scan_vs_ceiling():
    """The stats pass against the ceiling in interleaved pairs (`scan-vs-ceiling`), on the
    criterion bench's synthetic 2M records and on a realistic one-run trace of 2M spans (the
    bench trace has three runs, and a scan of its default run skips two thirds of the records)."""
    one_run = WORK / "trace-1run.jsonl"
    generate(one_run, "jsonl", 2_000_000, runs=1)
    rec = WORK / "trace-1run.ferret"
    subprocess.run([REL / "ferret-convert", one_run, "-o", rec, "--force", "--quiet"], check=True)
    results = []
    for label, args in (("synthetic (criterion's file: 200 names, uniform)", ["--synthetic", "2000000"]),
                        ("realistic (ferret-gen, one run)", [rec])):
        out = subprocess.run([REL / "scan-vs-ceiling"] + args + ["30"], capture_output=True, text=True, check=True)
        records, unverified, verified, ceiling = out.stdout.split()
        results.append((label, int(records), float(unverified), float(verified), float(ceiling)))
    return results


def sidecar_calls():
    """`ferret-scan trace.db` straight on a FERRET_SPANS-span database: the first call (the
    conversion into its sidecar, then the scan), a later call after nothing changed (the
    refresh finds no new row), and the scan of the sidecar itself."""
    src = WORK / "trace-ferret-io.db"
    generate(src, "beaver1", FERRET_SPANS)
    folder = WORK / "sidecar"
    folder.mkdir(exist_ok=True)
    db = folder / "trace.db"
    sidecar = folder / "trace.db.ferret"
    shutil.copyfile(src, db)

    def fresh():
        sidecar.unlink(missing_ok=True)
        warm(db)
    first, m1 = measured([REL / "ferret-scan", db], LONG_RUNS, fresh)
    again, m2 = measured([REL / "ferret-scan", db], RUNS, lambda: warm(db, sidecar))
    alone, m3 = measured([REL / "ferret-scan", sidecar], RUNS, lambda: warm(sidecar))
    return [
        (f"ferret-scan trace.db, first call ({FERRET_SPANS:,} spans: convert into the sidecar, scan)", first, m1, ""),
        ("ferret-scan trace.db, next call, nothing new", again, m2, f"{again / alone:.2f}× the scan alone"),
        ("ferret-scan trace.db.ferret (the scan alone)", alone, m3, ""),
    ]


def selective_questions():
    """The 40-run trace's questions, each against one plain read of the whole file (whole
    processes, warm, interleaved: the plain read is measured before every question), and each
    against its floor: starting the process (`--runs` reads only metadata), a plain read of
    run R's bytes alone (the questions that read the run), a plain hash of every block
    (`--verify`). Like every warm file, this one is evicted and read back first (`warm`): a
    plain read of it split into 4 KiB folios took five times as long, which made every ratio
    here look better."""
    rec = WORK / f"runs40-{RUNS_SPANS}.ferret"
    if not rec.exists():
        lines = WORK / "runs40.jsonl"
        generate(lines, "jsonl", RUNS_SPANS, runs=40)
        subprocess.run([REL / "ferret-convert", lines, "-o", rec, "--force", "--quiet"], check=True)
        lines.unlink()  # gigabytes, and the record file is all the questions read
    evict(rec)
    huge_before = file_huge_pages_mb()
    warm(rec)  # read back (evicted again first: its first warming in this run)
    huge = file_huge_pages_mb() - huge_before
    run = f"{0x5eed0000 + 20:032x}"  # the generator's 21st run, mid-file
    size = rec.stat().st_size
    listed = json.loads(subprocess.run([REL / "ferret-scan", rec, "--runs", "--format", "json"], check=True,
                                       capture_output=True, text=True).stdout)
    run_bytes = next(r["spans"] for r in listed if r["run_id"] == run) * 64
    floors = {
        "start": ("ferret-scan --version: starting the process, the floor of a question that reads only metadata", [REL / "ferret-scan", "--version"]),
        # Its middle, where run R lies.
        "run": (f"plain mmap read of run R's bytes alone ({run_bytes / 1e6:.0f} MB of the same file): "
                "the floor of a question that reads the run", [REL / "mmap-ceiling", rec, str(size // 2), str(run_bytes)]),
        "hash": ("plain hash of the whole file a record block (64 KiB) at a time with the format's checksum: "
                 "the floor of --verify", [REL / "mmap-ceiling", "--checksums", rec]),
    }
    questions = [("--runs", ["--runs"], 0.06, "start"), ("--run R (one run of 40)", ["--run", run], 0.06, "run"),
                 ("the default run's table", [], 0.06, "run"), ("--since -5m (the default run)", ["--since", "-5m"], 0.06, "run"),
                 ("--timeline --run R", ["--timeline", "--run", run], 0.06, "run"),
                 ("--tree --run R", ["--tree", "--run", run], 0.06, "run"),
                 ("--verify (every checksum and record, in parallel)", ["--verify"], 2.0, "hash")]
    floor = {key: measured(cmd, RUNS, lambda: warm(rec)) for key, (_, cmd) in floors.items()}
    measures, reads = [], []
    for label, extra, goal, under in questions:
        read, read_mib = measured([REL / "mmap-ceiling", rec], RUNS, lambda: warm(rec))
        reads.append(read)
        measures.append((label, goal, under) + measured([REL / "ferret-scan", rec] + extra, RUNS, lambda: warm(rec)))
    read = min(reads)
    rows = [(f"plain mmap read of the whole 40-run file ({size / 1e9:.2f} GB; best of the {len(reads) * RUNS} reads "
             f"taken before each question; evicted and read back first: {huge:.0f} MB of it came back in huge folios)",
             read, read_mib, "", True)]
    rows += [(what, floor[key][0], floor[key][1], f"{floor[key][0] / read:.3f}× of the plain read", True)
             for key, (what, _) in floors.items()]
    rows += [(f"40 runs: ferret-scan {label}", t, m,
              f"{t / read:.3f}× of the plain read (goal ≤ {goal}×); {t / floor[under][0]:.1f}× its floor", t / read <= goal)
             for label, goal, under, t, m in measures]
    # Cold (last: what a cold scan leaves in the page cache is its own business): the file
    # evicted before each run; what the question read is what the cache holds of it after.
    for label, extra in [("--runs", ["--runs"]), ("--run R (one run of 40)", ["--run", run])]:
        t, m = measured([REL / "ferret-scan", rec] + extra, RUNS, lambda: evict(rec))
        read_in = resident_bytes(rec)
        note = "" if read_in is None else f"read {read_in / 1e6:.0f} MB of the file from the device"
        rows.append((f"40 runs, cold (the file evicted before each run): ferret-scan {label}", t, m, note, True))
    return rows


def reports(rec):
    """The timeline, the HTML page and the run comparison on the bench trace (warm, whole
    processes): the page against the scans it is made of, run alone (table of every function,
    timeline, flame graph, the 20 slowest trees), and the comparison against the two runs'
    tables."""
    def best(extra):
        return measured([REL / "ferret-scan", rec] + extra, RUNS, lambda: warm(rec))
    page = WORK / "report.html"
    base = "0000000000000000000000005eed0000"
    html, html_mib = best(["--html", page])
    parts = [["--format", "json", "--limit", "0"], ["--timeline", "--format", "json"],
             ["--flamegraph", WORK / "alone.svg"], ["--tree", "--format", "json"]]
    alone = sum(best(extra)[0] for extra in parts)
    timeline, timeline_mib = best(["--timeline", "--format", "json"])
    compared, compared_mib = best(["--baseline", base, "--format", "json"])
    tables = best(["--run", base, "--format", "json"])[0] + best(["--run", RUN, "--format", "json"])[0]
    return [
        ("ferret-scan --timeline (default buckets)", timeline, timeline_mib, ""),
        ("ferret-scan --html (the page of the default run)", html, html_mib,
         f"page {page.stat().st_size / 1e6:.2f} MB; {html - alone:+.2f} s beyond its scans run alone ({alone:.2f} s)"),
        ("ferret-scan --baseline R0 (default run against the first)", compared, compared_mib,
         f"{compared / tables:.2f}× the two runs' tables ({tables:.2f} s)"),
    ]


def write_results(rows, pairs, selective, report_rows):
    by = {r[0]: r for r in rows}
    def ratio(a, b):
        return f"{by[b][1] / by[a][1]:.1f}×" if a in by and b in by else "n/a"
    lines = [
        "# End-to-end results",
        "",
        f"{stamp('make bench-e2e')} (`benches/e2e.py`; `make bench` runs it after criterion) · "
        f"{SPANS:,} generated spans (`ferret-gen`) in 3 runs, record file {(WORK / 'trace.ferret').stat().st_size / 1e6:.0f} MB. "
        f"Each time is the best of {RUNS} runs ({LONG_RUNS} for commands of several seconds; sqlite3 and ferret-io once), "
        "ours and the peers alike: single runs of the same binary swing by a third on this machine. "
        "Times and peak RSS are each command's own (the `peak-rss` launcher). "
        "Warm runs read their input through first: this VM's page cache lets pages of multi-GB files go between runs; "
        "before its first warm run each file is evicted and read back, so that the kernel holds it as a write or a cold read "
        "leaves it (2 MB folios), not split by reclaim (4 KiB folios), which made mapping it up to five times dearer. "
        "Peak RSS counts the file pages a process maps, and the kernel maps 2 MB folios whole: a warm scan's RSS is "
        "mostly page cache the kernel can drop, not heap (a cold scan maps less; MEMTEST.md runs under a memory limit). "
        "A throughput is of the bytes the command reads: a question about one run reads that run's blocks only.",
        "",
        "| what | seconds | peak RSS MiB | note |",
        "|---|---:|---:|---|",
    ]
    for what, t, m, note in rows:
        lines.append(f"| {what} | {t:.3f} | {'' if m is None else f'{m:.0f}'} | {note} |")
    table_warm = "ferret-scan table (the default run) (warm)"
    other_warm = "ferret-scan --run R --format json (another run) (warm)"
    first_call = f"ferret-scan trace.db, first call ({FERRET_SPANS:,} spans: convert into the sidecar, scan)"
    one_run = [r for r in rows if r[0].startswith("one-run trace")]
    lines += [
        "",
        "Ratios (higher is better for ferret):",
        "",
        f"- ferret-scan table vs DuckDB over Parquet (whole process): {ratio(table_warm, 'DuckDB over Parquet (warm, whole process)')}",
        f"- ferret-scan table vs DuckDB over JSON lines: {ratio(table_warm, 'DuckDB over JSON lines (warm, whole process)')}",
        f"- ferret-scan table vs sqlite3 json_extract: {ratio(table_warm, 'sqlite3 json_extract GROUP BY (warm)')}",
        f"- ferret-scan of the converted file vs ferret-io at {FERRET_SPANS:,} spans: {ratio(f'ferret-scan table at {FERRET_SPANS:,} spans (warm)', f'ferret-io `ferret analyze` at {FERRET_SPANS:,} spans')}",
        f"- ferret-scan trace.db, first call (the conversion included) vs ferret-io at {FERRET_SPANS:,} spans: {ratio(first_call, f'ferret-io `ferret analyze` at {FERRET_SPANS:,} spans')}",
        f"- ferret-scan --to-parquet vs DuckDB JSON lines → Parquet (spans/s): {ratio('ferret-scan --to-parquet --all-runs', 'DuckDB JSON lines → Parquet (whole process)')}",
        f"- ferret-convert from SQLite vs DuckDB JSON lines → Parquet (spans/s): {ratio('ferret-convert (BeaverDB → records)', 'DuckDB JSON lines → Parquet (whole process)')}",
        f"- ferret-scan table of the one-run trace vs a plain mmap read of that file (whole processes, the same bytes): "
        f"{one_run[1][1] / one_run[0][1] * 100:.0f}% of the read's speed" if len(one_run) == 2 else "- one-run trace: not measured",
        "",
        "Targets (from the issues):",
        "",
    ]
    def target(what, value, goal, unit):
        if value is None:
            return f"- {what}: not measured (a peer was skipped)"
        verdict = "met" if value >= goal else "**short**"
        return f"- {what}: {value:.2f}{unit} against ≥ {goal}{unit}: {verdict}"
    def speedup(a, b):
        return by[b][1] / by[a][1] if a in by and b in by else None
    convert = by["ferret-convert (BeaverDB → records)"]
    lines += [
        target("convert", SPANS / convert[1] / 1e6, 1.5, "M spans/s"),
        # The convert issue's reason for its 1.5M/s: DuckDB then took 3.5 s for this JSON lines to
        # Parquet step, "we should beat that while reading SQLite"; this is that, side by side.
        target("convert from SQLite vs DuckDB's JSON lines → Parquet", speedup("ferret-convert (BeaverDB → records)", "DuckDB JSON lines → Parquet (whole process)"), 1, "×"),
        target("the default run's table vs DuckDB over Parquet (that run)", speedup(table_warm, "DuckDB over Parquet (warm, whole process)"), 3, "×"),
        target(f"scan vs ferret-io at {FERRET_SPANS:,} spans (the file converted)", speedup(f"ferret-scan table at {FERRET_SPANS:,} spans (warm)", f"ferret-io `ferret analyze` at {FERRET_SPANS:,} spans"), 1000, "×"),
        target(f"first call on the trace vs ferret-io at {FERRET_SPANS:,} spans (the conversion included)", speedup(first_call, f"ferret-io `ferret analyze` at {FERRET_SPANS:,} spans"), 10, "×"),
        target("Parquet export vs DuckDB's JSON lines → Parquet", speedup("ferret-scan --to-parquet --all-runs", "DuckDB JSON lines → Parquet (whole process)"), 1, "×"),
    ] + criterion_lines() + [
        "Stats pass against the ceiling in interleaved pairs (`scan-vs-ceiling`: ceiling read, pass",
        "without checksums, pass with, 30 times; the median of each pair's ratio; target ≥ 50%):",
        "",
    ] + [
        f"- {label}, {records:,} records: --no-verify {u * 100:.0f}%{'' if u >= 0.5 else ' (**short**)'}, "
        f"checksums checked {v * 100:.0f}%{'' if v >= 0.5 else ' (**short**)'} (ceiling at best {c:.1f} GiB/s)"
        for label, records, u, v, c in pairs
    ] + [
        "",
        f"Questions of a service on a {RUNS_SPANS:,}-span trace of 40 runs (whole processes, warm; the goals of the "
        "writers-and-opening issue: each question at most 0.06× of one plain read of the whole file, `--verify` at most 2×; "
        "a floor is the least such a question must do, timed the same way: where a floor is above the goal, no "
        "implementation of that question meets it on this machine):",
        "",
        "| what | seconds | peak RSS MiB | note |",
        "|---|---:|---:|---|",
    ] + [
        f"| {what} | {t:.4f} | {m:.0f} | {note}{'' if met else ' (**short**)'} |"
        for what, t, m, note, met in selective
    ] + [
        "",
        f"Reports on the {SPANS:,}-span trace (whole processes, warm; target: the page written in under a second "
        "beyond the scans it is made of):",
        "",
        "| what | seconds | peak RSS MiB | note |",
        "|---|---:|---:|---|",
    ] + [f"| {what} | {t:.3f} | {m:.0f} | {note} |" for what, t, m, note in report_rows] + [""]
    (ROOT / "benches" / "RESULTS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
