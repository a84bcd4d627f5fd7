#!/usr/bin/env bash
# Prints the path of a Python with the readers the tests check our outputs with (pyarrow for
# Parquet), making its virtualenv under target/test-venv on first use (needs PyPI once). `make
# test` passes it to the tests as FERRET_TEST_PYTHON.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${FERRET_TEST_VENV:-$root/target/test-venv}
if ! "$venv/bin/python" -c 'import pyarrow' 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q pyarrow >&2
fi
echo "$venv/bin/python"
