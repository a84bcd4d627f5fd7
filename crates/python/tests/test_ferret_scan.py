"""The Python module against ferret-io's own analyzer and against the CLI, from the installed
wheel (`make test-wheel` runs this with pytest in a fresh virtualenv that also holds ferret-io
0.3.1 and beaver-db 1.3.0, so both answer in one interpreter)."""

import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import ferret_scan

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "testdata" / "fixtures"
TRACES = [
    FIXTURES / "beaver1.db",
    FIXTURES / "beaver2.db",
    FIXTURES / "generated1.db",
    FIXTURES / "oddities.db",
    *sorted((FIXTURES / "workers").glob("worker-*.db")),
]
sys.path.insert(0, str(ROOT / "tools" / "fixtures"))
import reference  # noqa: E402  (ferret-io's Report, as the committed references were made)

BIN = Path(sys.executable).parent


def copy(trace, folder):
    """A copy of a fixture (ferret keeps a sidecar beside it; BeaverDB may switch it to WAL)."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(trace, folder / trace.name))


def cli(*args):
    """The installed ferret-scan's JSON answer."""
    out = subprocess.run([BIN / "ferret-scan", *map(str, args), "--format", "json", "--quiet"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def cli_error(*args):
    """The line the installed ferret-scan prints for a failure, without its name."""
    out = subprocess.run([BIN / "ferret-scan", *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 1, out
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("ferret-scan: ")
    return line[len("ferret-scan: "):]


def ferret_io(trace, folder):
    """ferret-io's Report of a copy of `trace`, and its spans (ferret's order)."""
    report, _ = reference.report_for(str(copy(trace, folder)))
    return report, [entry[1] for entry in report.log_manager]


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
def test_functions_equal_ferret_io_for_every_run(trace, tmp_path):
    report, spans = ferret_io(trace, tmp_path / "ferret-io")
    ours = ferret_scan.open(copy(trace, tmp_path / "ours"))
    runs = list(dict.fromkeys(s.run_id for s in spans))
    assert {r["run_id"] for r in ours.runs()} == set(runs)
    for run in runs:
        table = ours.functions(run=run)
        rows = {row["name"]: row for row in table.to_pylist()}
        want = report.analyze_run(run)
        assert set(rows) == set(want), run
        for name, w in want.items():
            got = rows[name]
            assert (got["count"], got["error_count"]) == (w.count, w.error_count), (run, name)
            for key in ("total_duration", "avg_duration", "min_duration", "max_duration",
                        "error_rate"):
                assert close(got[key], getattr(w, key)), (run, name, key, got[key])
        # The Arrow table holds the same rows as the JSON.
        assert len(table) == len(rows)


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
def test_spans_count_and_sum_as_ferret_io_through_duckdb(trace, tmp_path):
    duckdb = pytest.importorskip("duckdb", reason="DuckDB is not installed here")
    _, spans = ferret_io(trace, tmp_path / "ferret-io")
    ours = ferret_scan.open(copy(trace, tmp_path / "ours"))
    for run in dict.fromkeys(s.run_id for s in spans):
        want_count, want_sum = defaultdict(int), defaultdict(float)
        for s in spans:
            if s.run_id == run:
                want_count[s.name] += 1
                want_sum[s.name] += s.duration or 0.0
        stream = ours.spans(run=run, batch_rows=500)  # several batches per run
        got = duckdb.sql(
            "SELECT name, count(*), coalesce(sum(duration), 0) FROM stream GROUP BY name"
        ).fetchall()
        assert {name: n for name, n, _ in got} == dict(want_count), run
        for name, _, total in got:
            assert close(total, want_sum[name]), (run, name)


def test_spans_are_the_parquet_exports_rows(tmp_path):
    pyarrow = pytest.importorskip("pyarrow", reason="pyarrow is not installed here")
    import pyarrow.parquet as pq

    trace = copy(FIXTURES / "generated1.db", tmp_path)
    exported = tmp_path / "spans.parquet"
    subprocess.run([BIN / "ferret-scan", trace, "--all-runs", "--to-parquet", exported],
                   check=True, capture_output=True)
    want = pq.read_table(exported)
    got = pyarrow.RecordBatchReader.from_stream(
        ferret_scan.open(trace).spans(all_runs=True, batch_rows=700)).read_all()
    for column in want.column_names:
        assert got[column].to_pylist() == want[column].to_pylist(), column
    ends = [s + d if d is not None else None
            for s, d in zip(got["start_time"].to_pylist(), got["duration"].to_pylist())]
    assert got["end_time"].to_pylist() == ends


def test_trees_equal_the_clis_json(tmp_path):
    trace = copy(FIXTURES / "beaver1.db", tmp_path)
    t = ferret_scan.open(trace)
    for run in [r["run_id"] for r in t.runs()]:
        assert t.trees(run=run, limit=3) == cli(trace, "--tree", "--run", run, "--limit", 3)
    assert t.trees(limit=2, max_nodes=5) == cli(trace, "--tree", "--limit", 2, "--max-nodes", 5)


def test_every_table_equals_the_clis_json(tmp_path):
    workers = [copy(p, tmp_path) for p in sorted((FIXTURES / "workers").glob("worker-*.db"))]
    switch = json.loads((FIXTURES / "workers" / "workers.json").read_text())["switch"]
    t = ferret_scan.open(workers)
    assert t.runs().to_pylist() == cli(*workers, "--runs")
    assert t.functions().to_pylist() == cli(*workers, "--limit", 0)["functions"]
    assert t.timeline(bucket="1s").to_pylist() == cli(*workers, "--timeline", "--bucket", "1s")["buckets"]
    compared = t.compare(baseline_until=switch, since=switch)
    want = cli(*workers, "--baseline-until", switch, "--since", switch, "--limit", 0)
    assert compared.to_pylist() == want["functions"]
    assert compared.answer["summary"] == want["summary"]
    slower = {row["name"] for row in compared if row["change"] == "slower"}
    assert "db.query" in slower


def test_times_take_seconds_datetimes_rfc3339_and_relative_strings(tmp_path):
    trace = copy(FIXTURES / "generated1.db", tmp_path)
    t = ferret_scan.open(trace)
    since = 1795000007.0
    want = cli(trace, "--since", since, "--limit", 0)["functions"]
    at = dt.datetime.fromtimestamp(since, dt.timezone.utc)
    for given in (since, int(since), at, at.isoformat(), at.astimezone().replace(tzinfo=None)):
        assert t.functions(since=given).to_pylist() == want, given
    relative = cli(trace, "--since", "-500ms", "--limit", 0)["functions"]
    assert t.functions(since="-500ms").to_pylist() == relative
    assert t.timeline(bucket=dt.timedelta(milliseconds=250)).to_pylist() == cli(
        trace, "--timeline", "--bucket", "250ms")["buckets"]


def test_errors_raise_ferret_errors_with_the_clis_message(tmp_path):
    missing = tmp_path / "missing.db"
    with pytest.raises(ferret_scan.InputError) as e:
        ferret_scan.open(missing).functions()
    assert str(e.value) == cli_error(missing)
    text = tmp_path / "notes.txt"
    text.write_text("not a trace\n")
    with pytest.raises(ferret_scan.FerretError) as e:
        ferret_scan.open(text).runs()
    assert str(e.value) == cli_error(text)
    trace = copy(FIXTURES / "beaver1.db", tmp_path)
    with pytest.raises(ferret_scan.InputError) as e:
        ferret_scan.open(trace).functions(run="no-such-run")
    assert str(e.value) == cli_error(trace, "--run", "no-such-run")
    with pytest.raises(ferret_scan.InputError) as e:
        ferret_scan.open(trace).spans(run="no-such-run")
    assert str(e.value) == cli_error(trace, "--run", "no-such-run")


def test_a_damaged_record_file_raises_damage_error(tmp_path):
    record = tmp_path / "t.ferret"
    subprocess.run([BIN / "ferret-convert", FIXTURES / "beaver1.db", "-o", record, "--quiet"],
                   check=True)
    data = bytearray(record.read_bytes())
    data[len(data) // 2] ^= 0xFF
    record.write_bytes(bytes(data))
    with pytest.raises(ferret_scan.DamageError) as e:
        ferret_scan.open(record).functions(all_runs=True)
    assert str(e.value) == cli_error(record, "--all-runs")


def test_pandas_and_polars_build_frames(tmp_path):
    trace = copy(FIXTURES / "generated1.db", tmp_path)
    table = ferret_scan.open(trace).functions()
    pandas = pytest.importorskip("pandas", reason="pandas is not installed here")
    frame = table.to_pandas()
    assert list(frame.columns) == table.columns
    assert frame["count"].sum() == sum(row["count"] for row in table)
    polars = pytest.importorskip("polars", reason="polars is not installed here")
    frame = polars.DataFrame(table)
    assert frame.columns == table.columns
    assert frame["total_duration"].to_list() == [row["total_duration"] for row in table]
    spans = polars.DataFrame(ferret_scan.open(trace).spans())
    assert spans.height == table.answer["spans"]
    assert pandas is not None


def test_to_pylist_needs_no_arrow_library(tmp_path):
    trace = copy(FIXTURES / "generated1.db", tmp_path)
    code = (
        "import sys\n"
        "for name in ('pyarrow', 'pandas', 'polars', 'duckdb'): sys.modules[name] = None\n"
        "import ferret_scan, json\n"
        f"rows = ferret_scan.open({str(trace)!r}).functions().to_pylist()\n"
        "print(json.dumps(rows))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == cli(trace, "--limit", 0)["functions"]


RECORD = """
import sys, time
from ferret.core import Profiler
path, query_seconds = sys.argv[1], float(sys.argv[2])
p = Profiler(path, buffer_size=100)
for i in range(60):
    with p.measure("handle", tags={"request": i}):
        for name, seconds in (("auth.check", 0.002), ("db.query", query_seconds), ("render", 0.003)):
            with p.measure(name):
                time.sleep(seconds)
p.close()
"""


def test_the_readme_pytest_example_fails_on_a_slower_function(tmp_path):
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```python\n# test_no_regression.py")
    example = readme[start + len("```python\n"):readme.index("```", start + 3)]
    (tmp_path / "test_no_regression.py").write_text(example)

    def pytest_on(today_query_seconds):
        # Real ferret-io traces: yesterday's db.query sleeps 4 ms, today's as given.
        for day, seconds in (("yesterday", 0.004), ("today", today_query_seconds)):
            for old in tmp_path.glob(f"{day}.db*"):
                old.unlink()
            subprocess.run([sys.executable, "-c", RECORD, tmp_path / f"{day}.db", str(seconds)],
                           check=True)
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "test_no_regression.py"], cwd=tmp_path, capture_output=True,
                              text=True)

    same = pytest_on(0.004)
    assert same.returncode == 0, same.stdout + same.stderr
    slower = pytest_on(0.008)
    assert slower.returncode == 1, slower.stdout + slower.stderr
    said = next(line for line in slower.stdout.splitlines() if "Error: slower than yesterday:" in line)
    # db.query, and handle, which calls it; not its untouched siblings.
    assert "'db.query'" in said and "'handle'" in said, said
    assert "'render'" not in said and "'auth.check'" not in said, said


def test_a_question_releases_the_gil(tmp_path):
    # A worker thread asks about a named pipe: ferret blocks reading it until the main thread
    # writes, which it can only do if the worker's call released the GIL. Held, both wait for
    # ever, and the child is stopped by the timeout.
    code = """
import os, sys, threading, time, ferret_scan
fifo = sys.argv[1]
os.mkfifo(fifo)
raised = []
def ask():
    try:
        ferret_scan.open(fifo).runs()
    except ferret_scan.FerretError as e:
        raised.append(str(e))
worker = threading.Thread(target=ask)
worker.start()
while worker.is_alive():
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        time.sleep(0.01)
        continue
    try:
        os.write(fd, b"not a trace\\n")
    except BrokenPipeError:
        pass  # that reader had read and closed: the next open finds the next one
    os.close(fd)
worker.join()
print(raised[0])
"""
    out = subprocess.run([sys.executable, "-c", code, tmp_path / "pipe"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "not a ferret span file" in out.stdout, out.stdout


def test_a_path_that_is_not_utf8_is_read(tmp_path):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/tr\xffce.db"))
    shutil.copyfile(FIXTURES / "generated1.db", odd)
    assert ferret_scan.open(odd).functions().to_pylist() == cli(odd, "--limit", 0)["functions"]
    assert ferret_scan.open(os.fsencode(odd)).runs().to_pylist() == cli(odd, "--runs")
