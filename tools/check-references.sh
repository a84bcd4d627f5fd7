#!/usr/bin/env bash
# Runs ferret-io's own analyzer (tools/fixtures/reference.py, the real ferret-io 0.3.1) again on
# every committed fixture database and checks that it still gives the committed reference JSON
# the tests compare ferret against: `make check-references`, in CI. Needs Python 3.13 and PyPI,
# like tools/make-fixtures.sh. Each run reads a copy (ferret-io switches a file it opens to WAL).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/fixtures/python.sh"
venvs=${FERRET_VENVS:-$root/target/fixture-venvs}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
checked=0
for pair in beaver1:1.3.0 beaver2:2.4.1 generated1:1.3.0 oddities:1.3.0 \
  workers/worker-0:1.3.0 workers/worker-1:1.3.0 workers/worker-2:1.3.0; do
  name=${pair%%:*}
  venv=$(ferret_venv "${pair##*:}" "$venvs")
  mkdir -p "$(dirname "$work/$name")"
  cp "$root/testdata/fixtures/$name.db" "$work/$name.db"
  "$venv/bin/python" "$here/fixtures/reference.py" "$work/$name.db" "$work/$name.json"
  "$venv/bin/python" - "$root/testdata/fixtures/$name.reference.json" "$work/$name.json" <<'PY'
import json, sys
committed, again = (json.load(open(p)) for p in sys.argv[1:3])
# How it was computed may be worded differently; what it computed may not differ at all.
committed.pop("how"); again.pop("how")
if committed != again:
    runs = set(committed["runs"]) | set(again["runs"])
    bad = [r for r in sorted(runs) if committed["runs"].get(r) != again["runs"].get(r)]
    sys.exit(f"{sys.argv[1]}: ferret-io now gives other answers (runs {bad or 'fields'}): run `make fixtures`")
PY
  checked=$((checked + 1))
done
echo "check-references: ferret-io gives the committed answers on all $checked fixtures"
