"""The Rust side of ferret_scan (use the package's functions, not these)."""

from typing import Any, List, Optional, Tuple

class FerretError(Exception):
    """An error of ferret's, with the message ferret-scan prints for it."""

class InputError(FerretError):
    """Bad input: a file missing or not a trace, an unknown run, a bad argument."""

class DamageError(FerretError):
    """A record file failed its checks (checksums, structure): convert the trace anew."""

def answer(args: List[str], rows: Optional[str] = None) -> Tuple[str, Optional[Any]]:
    """`ferret-scan ARGS --format json`: the JSON text, and the rows named by `rows` as an
    Arrow table (an object with ``__arrow_c_stream__``)."""

def spans(args: List[str], batch_rows: int) -> Any:
    """The spans `ferret-scan ARGS --to-parquet` would write, as a one-time Arrow stream."""
