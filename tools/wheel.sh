#!/usr/bin/env bash
# `make wheel`: builds the wheel (the module ferret_scan, and the binaries ferret-scan and
# ferret-convert staged by tools/build/backend.py) with maturin (from PyPI, in a virtualenv under
# target/). `make test-wheel`: installs it into a fresh Python 3.13 virtualenv, checks what `pip
# show` says, runs both tools from that virtualenv on the bundled fixtures (every run equal to
# ferret-io's reference, each database unchanged: tools/wheel_check.py), then the module's tests
# (crates/python/tests, pytest, with ferret-io in the same interpreter). `make test-pip`:
# `pip install .` from the repository root into a fresh virtualenv, and both tools run.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=target/wheel-tools
if [ ! -x "$tools/bin/maturin" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q "maturin>=1.5,<2"
fi
build() {
  rm -rf target/wheels
  python3 tools/build/backend.py
  # cargo metadata's download lines and maturin's progress go to a log; errors show it.
  "$tools/bin/maturin" build --release --quiet --out target/wheels >target/wheel-build.log 2>&1 ||
    { cat target/wheel-build.log >&2; return 1; }
  ls target/wheels/*.whl
}
case "${1:-build}" in
  build) build ;;
  test)
    wheel=$(build)
    venv=$(mktemp -d)
    trap 'rm -rf "$venv"' EXIT
    . tools/fixtures/python.sh
    "$(python313)" -m venv "$venv"
    "$venv/bin/pip" install -q "$wheel"
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
    shown=$("$venv/bin/pip" show ferret-scan)
    grep -qx "Version: $version" <<<"$shown"
    grep -q "^Summary: Fast, memory-mapped analysis of ferret-io traces" <<<"$shown"
    work=$(mktemp -d)
    trap 'rm -rf "$venv" "$work"' EXIT
    cp testdata/fixtures/beaver1.db "$work/trace.db"
    # Both tools as the virtualenv's PATH has them (pip put them in its bin folder).
    "$venv/bin/ferret-convert" "$work/trace.db" -o "$work/trace.ferret" --quiet
    table=$("$venv/bin/ferret-scan" "$work/trace.ferret" --format json --limit 0)
    direct=$("$venv/bin/ferret-scan" "$work/trace.db" --format json --limit 0)
    [ "$table" = "$direct" ] || { echo "the .db and its conversion answer differently" >&2; exit 1; }
    [ -n "$table" ]
    python3 tools/wheel_check.py "$venv/bin" "$work" testdata/fixtures/*.db
    echo "wheel ok: $(basename "$wheel"), ferret-scan and ferret-convert from a fresh virtualenv"
    # The module, in the same virtualenv: ferret-io (and the beaver-db its fixtures were made
    # with) beside it for the differential tests; the Arrow consumers for theirs.
    "$venv/bin/pip" install -q "ferret-io==0.3.1" "beaver-db==1.3.0" pytest pyarrow duckdb pandas polars
    "$venv/bin/python" -m pytest -q -p no:cacheprovider crates/python/tests
    ;;
  source)
    # `pip install .` from the repository root, as a user with a clone would: maturin builds
    # it in pip's isolated environment, every dependency again (two minutes here; not in CI,
    # where the wheel above is the same build).
    venv=$(mktemp -d)
    trap 'rm -rf "$venv"' EXIT
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q .
    "$venv/bin/ferret-scan" --version
    "$venv/bin/ferret-convert" --version
    "$venv/bin/python" -c 'import ferret_scan; print(ferret_scan.__doc__.splitlines()[0])'
    ;;
  *) echo "usage: tools/wheel.sh build|test|source" >&2; exit 2 ;;
esac
