"""ferret_scan: ferret-scan's answers on ferret-io traces, from Python.

    import ferret_scan
    trace = ferret_scan.open("trace.db")          # a .db, .jsonl or record file; or a list
    trace.runs()                                  # a Table: one row per run
    trace.functions(since="-1h", name=r"^db\\.")  # per-function statistics
    trace.timeline(bucket="1m")                   # time buckets
    trace.compare(baseline_since="-2h", baseline_until="-1h")
    trace.trees(limit=5)                          # nested dicts
    trace.spans(run=...)                          # a stream of Arrow record batches

Each call asks ferret-scan's own code, in this process and without the GIL, with the arguments
the command line would take: the columns and numbers are those of `ferret-scan ... --format
json`. Tables implement the Arrow PyCapsule interface (``__arrow_c_stream__``), so
``pyarrow.table(t)``, ``polars.DataFrame(t)`` and ``duckdb.sql("SELECT ... FROM t")`` take them
without a copy; ``t.to_pylist()`` needs none of those libraries.

Errors raise :class:`FerretError` (:class:`InputError` for bad input, :class:`DamageError` for a
damaged record file) with the line ferret-scan prints.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
import os as _os
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Sequence, TypedDict, Union

if TYPE_CHECKING:
    from typing_extensions import Unpack

from . import _native
from ._native import DamageError, FerretError, InputError

__all__ = [
    "open",
    "Trace",
    "Filters",
    "Table",
    "SpanStream",
    "FerretError",
    "InputError",
    "DamageError",
]

PathLike = Union[str, "_os.PathLike[str]"]
Time = Union[float, int, str, _dt.datetime]
Duration = Union[float, int, str, _dt.timedelta]


class Filters(TypedDict, total=False):
    """The keywords every question takes: which spans it is about, as ferret-scan's options.

    run: a run id or unique prefix, or several (default: each file's latest run, as ferret-io
    picks it); all_runs: every run of every file. since/until: span starts from/before, as Unix
    seconds, a datetime (naive: local time), RFC 3339, or relative to the population's last span
    end like ``"-1h"``. name: a regular expression on function names; status: ``"ok"`` or
    ``"error"``; tag: ``"KEY=VALUE"``.
    """

    run: Union[str, Sequence[str]]
    all_runs: bool
    since: Time
    until: Time
    name: str
    status: str
    tag: str


class Table:
    """Rows of an answer: the JSON rows ferret-scan prints, and the same as an Arrow table.

    ``pyarrow.table(t)``, ``polars.DataFrame(t)``, ``duckdb.sql("... FROM t")`` read it through
    ``__arrow_c_stream__``; ``to_pylist()`` gives the rows as dicts; ``to_pandas()`` and
    ``to_polars()`` need pandas (with pyarrow) or polars installed.
    """

    def __init__(self, rows: List[Dict[str, Any]], arrow: Any, answer: Dict[str, Any]):
        self._rows = rows
        self._arrow = arrow
        #: The whole JSON answer the rows came from (run id or population, totals, ...).
        self.answer = answer

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The rows as an Arrow C stream (the Arrow PyCapsule interface)."""
        return self._arrow.__arrow_c_stream__(requested_schema)

    def __arrow_c_schema__(self) -> Any:
        """The table's Arrow schema as a PyCapsule."""
        return self._arrow.__arrow_c_schema__()

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return iter(self._rows)

    def __repr__(self) -> str:
        columns = ", ".join(self.columns)
        return f"<ferret_scan.Table: {len(self)} rows; {columns}>"

    @property
    def columns(self) -> List[str]:
        """The column names, in order."""
        return list(self._rows[0]) if self._rows else []

    def to_pylist(self) -> List[Dict[str, Any]]:
        """The rows as dicts, as ferret-scan's JSON has them."""
        return [dict(row) for row in self._rows]

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` (needs pyarrow)."""
        import pyarrow

        return pyarrow.table(self)

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` (needs pandas and pyarrow)."""
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        """A ``polars.DataFrame`` (needs polars)."""
        import polars

        return polars.DataFrame(self)


class SpanStream:
    """The selected spans as a stream of Arrow record batches, built one batch at a time.

    Read it once: ``pyarrow.RecordBatchReader.from_stream(s)``, ``duckdb.sql("... FROM s")``,
    ``polars.DataFrame(s)``, or iterate it with pyarrow installed (each item a
    ``pyarrow.RecordBatch``).
    """

    def __init__(self, reader: Any):
        self._reader = reader

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The batches as an Arrow C stream; the stream can be taken once."""
        return self._reader.__arrow_c_stream__(requested_schema)

    def __arrow_c_schema__(self) -> Any:
        """The batches' Arrow schema as a PyCapsule."""
        return self._reader.__arrow_c_schema__()

    def __iter__(self) -> Iterator[Any]:
        import pyarrow

        return iter(pyarrow.RecordBatchReader.from_stream(self))


def _time(t: Time) -> str:
    """A time as ferret-scan reads it: Unix seconds, RFC 3339, or relative like ``-1h``."""
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.astimezone()  # a naive datetime is local time, as Python's own methods read it
        return repr(t.timestamp())
    if isinstance(t, bool):
        raise TypeError(f"a time is Unix seconds, a datetime or a string, not {t!r}")
    if isinstance(t, (int, float)):
        return repr(float(t))
    if isinstance(t, str):
        return t
    raise TypeError(f"a time is Unix seconds, a datetime or a string, not {type(t).__name__}")


def _duration(d: Duration) -> str:
    """A duration as ferret-scan reads it (``250ms``, ``5m``); numbers are seconds."""
    if isinstance(d, _dt.timedelta):
        d = d.total_seconds()
    if isinstance(d, (int, float)) and not isinstance(d, bool):
        return f"{round(float(d) * 1e9)}ns"
    if isinstance(d, str):
        return d
    raise TypeError(f"a duration is seconds, a timedelta or a string like '5m', not {d!r}")


def _runs(option: str, run: Union[None, str, Sequence[str]]) -> List[str]:
    if run is None:
        return []
    if isinstance(run, str):
        return [option, run]
    return [arg for r in run for arg in (option, r)]


class Trace:
    """One trace file, or several as one population (a service's workers).

    Made by :func:`open`. Every method asks ferret-scan with the same arguments as the command
    line and returns its answer; a trace that grew since the last question is brought up to
    date first (its sidecar gains the new rows).
    """

    def __init__(self, paths: List[str], namespace: Optional[str], sidecar: bool):
        self.paths = paths
        self.namespace = namespace
        self.sidecar = sidecar

    def __repr__(self) -> str:
        return f"ferret_scan.open({self.paths!r})"

    def _args(self, *args: str) -> List[str]:
        # A relative path that starts with "-" would read as an option.
        base = [f"./{p}" if p.startswith("-") else p for p in self.paths]
        if self.namespace is not None:
            base += ["--namespace", self.namespace]
        if not self.sidecar:
            base.append("--no-sidecar")
        return base + list(args)

    def _answer(self, args: List[str]) -> Any:
        text, _ = _native.answer(self._args(*args))
        return _json.loads(text)

    def _table(self, args: List[str], rows: str) -> Table:
        text, arrow = _native.answer(self._args(*args), rows)
        answer = _json.loads(text)
        return Table(answer[rows] if rows else answer, arrow, answer)

    def runs(self) -> Table:
        """Every run of every file: run_id, spans, errors, first_start, last_start,
        wall_seconds, default (and file, for several files), as ``ferret-scan --runs``."""
        return self._table(["--runs"], "")

    def functions(self, sort: str = "total", limit: int = 0, **filters: Unpack[Filters]) -> Table:
        """Per-function statistics (count, total/avg/min/max duration, errors, p50/p90/p99,
        self time), as ``ferret-scan --format json``, of the spans :class:`Filters` choose.
        limit: rows (0, the default, is every function), in ``sort`` order (total, count, avg,
        min, max, errors, error_rate, p50, p90, p99, self or name).
        """
        args = ["--limit", str(limit), "--sort", sort] + _filters(filters)
        return self._table(args, "functions")

    def timeline(self, bucket: Optional[Duration] = None, **filters: Unpack[Filters]) -> Table:
        """Time buckets by span start: start, spans, errors, error_rate, total_duration, p50,
        p90, p99, as ``ferret-scan --timeline``. bucket: the width (seconds, a timedelta or
        ``"5m"``; default a round width giving at most 200 buckets), of the spans
        :class:`Filters` choose."""
        args = ["--timeline"]
        if bucket is not None:
            args += ["--bucket", _duration(bucket)]
        args += _filters(filters)
        return self._table(args, "buckets")

    def compare(
        self,
        baseline: Optional[PathLike] = None,
        baseline_run: Union[None, str, Sequence[str]] = None,
        baseline_since: Optional[Time] = None,
        baseline_until: Optional[Time] = None,
        min_effect: float = 5.0,
        fdr: float = 5.0,
        sort: str = "total",
        limit: int = 0,
        **filters: Unpack[Filters],
    ) -> Table:
        """Each function against a baseline, with a verdict (slower, faster, same, new, gone),
        as ``ferret-scan --baseline ...``: name, change, p_value, q_value, shift, and the base,
        target, delta and ratio statistics.

        baseline: a run id or prefix in these files, or another trace or record file (its
        default run, or baseline_run). baseline_since/baseline_until: a window of the baseline
        (without baseline, of this same population). :class:`Filters` apply to both sides.
        min_effect and fdr are percentages. The
        answer's summary and sides are in ``table.answer``. limit: rows (0, the default, is
        every function), in ``sort`` order.
        """
        args = ["--min-effect", repr(float(min_effect)), "--fdr", repr(float(fdr))]
        args += ["--limit", str(limit), "--sort", sort]
        if baseline is not None:
            args += ["--baseline", _os.fspath(baseline)]
        args += _runs("--baseline-run", baseline_run)
        if baseline_since is not None:
            args += ["--baseline-since", _time(baseline_since)]
        if baseline_until is not None:
            args += ["--baseline-until", _time(baseline_until)]
        if baseline is None and baseline_since is None and baseline_until is None:
            raise InputError("compare needs a baseline: baseline, baseline_since or baseline_until")
        args += _filters(filters)
        return self._table(args, "functions")

    def trees(
        self,
        limit: int = 5,
        max_nodes: Optional[int] = None,
        min_ms: float = 0.0,
        **filters: Unpack[Filters],
    ) -> Dict[str, Any]:
        """The ``limit`` slowest call trees as nested dicts, as ``ferret-scan --tree --format
        json``: ``{"run_id", "roots": [{"span_id", "name", "start_time", "duration",
        "self_time", "status", "tags", "children": [...], "elided": {...}}]}``. max_nodes and
        min_ms fold the fastest spans into each tree's ``elided`` summary; :class:`Filters`
        choose the roots."""
        args = ["--tree", "--limit", str(limit), "--min-ms", repr(float(min_ms))]
        if max_nodes is not None:
            args += ["--max-nodes", str(max_nodes)]
        args += _filters(filters)
        return self._answer(args)

    def spans(self, batch_rows: int = 65536, **filters: Unpack[Filters]) -> SpanStream:
        """The selected spans as a stream of Arrow record batches with the Parquet export's
        columns (span_id, parent_id, root_id, run_id, name, start_time, end_time, duration,
        self_time, status, depth, tags as JSON text), built one batch of about ``batch_rows``
        rows at a time: memory stays bounded by a batch. :class:`Filters` choose the spans; self
        time and depth count every span of the run, whatever the filters keep."""
        args = _filters(filters)
        return SpanStream(_native.spans(self._args(*args), batch_rows))


def _filters(filters: Filters) -> List[str]:
    """The command line's options of `filters`."""
    unknown = set(filters) - set(Filters.__annotations__)
    if unknown:
        raise TypeError(f"unknown filter {sorted(unknown)[0]!r}: the filters are {', '.join(Filters.__annotations__)}")
    args = _runs("--run", filters.get("run"))
    if filters.get("all_runs"):
        args.append("--all-runs")
    for key in ("since", "until"):
        if filters.get(key) is not None:
            args += [f"--{key}", _time(filters[key])]
    for key in ("name", "status", "tag"):
        if filters.get(key) is not None:
            args += [f"--{key}", filters[key]]
    return args


def open(
    paths: Union[PathLike, Iterable[PathLike]],
    namespace: Optional[str] = None,
    sidecar: bool = True,
) -> Trace:
    """A trace to ask questions of: a BeaverDB ``.db``, JSON lines (``.jsonl``) or a record
    file ferret-convert wrote; several paths form one population (a service's workers).

    namespace: the BeaverDB log name (default ferret-io's). sidecar: keep each trace's record
    file beside it (made the first time, then only new rows added); False converts into a
    temporary file at each question. Nothing is read until a question is asked.
    """
    if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
        given = [_os.fsdecode(_os.fspath(paths))]
    else:
        given = [_os.fsdecode(_os.fspath(p)) for p in paths]
    if not given:
        raise InputError("open needs at least one file")
    return Trace(given, namespace, sidecar)
