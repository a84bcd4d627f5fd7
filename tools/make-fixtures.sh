#!/usr/bin/env bash
# Regenerates testdata/fixtures/*.db and their ferret-io reference JSON with the real ferret-io
# 0.3.1, once under beaver-db 1.3.0 (REAL timestamps) and once under 2.4.1 (TEXT timestamps).
# Needs Python 3.13 (pyenv's, or PYTHON313=/path/to/python3.13) and PyPI. The results are
# committed, so the tests of `cargo test` never need Python (the live test, `make test-live`,
# does: it runs ferret-io).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/fixtures/python.sh"
py=$(python313)
venvs=${FERRET_VENVS:-$root/target/fixture-venvs}
out=$root/testdata/fixtures
mkdir -p "$venvs" "$out"

# Folds a database's WAL into it and returns it to rollback-journal mode, so the committed
# fixture is one self-contained file (BeaverDB switches any file it opens to WAL mode).
settle() {
  "$py" -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.execute('PRAGMA journal_mode=DELETE'); c.close()" "$1"
  rm -f "$1-wal" "$1-shm"
}

# `ferret analyze --tree` on a copy: BeaverDB switches the file it opens to WAL mode, and the
# fixtures stay exactly as written.
ferret_tree() {
  local copy
  copy=$(mktemp -d)/trace.db
  cp "$2" "$copy"
  COLUMNS=2000 "$1/bin/ferret" analyze "$copy" --tree --limit 20
  rm -rf "$(dirname "$copy")"
}
for v in 1.3.0 2.4.1; do
  major=${v%%.*}
  venv=$(ferret_venv "$v" "$venvs")
  db=$out/beaver$major.db
  rm -f "$db" "$db-wal" "$db-shm"
  (cd "$out" && "$venv/bin/python" "$here/fixtures/workload.py" "$db")
  "$venv/bin/python" "$here/fixtures/reference.py" "$db" "$out/beaver$major.reference.json"
  # ferret's own CLI tree text, where its analyzer runs (beaver-db 1.x); wide so nothing wraps.
  if [ "$major" = 1 ]; then
    ferret_tree "$venv" "$db" > "$out/beaver$major.ferret-tree.txt"
  fi
  settle "$db"
  echo "wrote $db ($(stat -c %s "$db") bytes) and its reference"
done
# A larger synthetic trace (deep trees, loops, late tasks, errors) with ferret's own results.
(cd "$root" && cargo run --quiet --release -p ferret-gen -- -o "$out/generated1.db" --spans 5000 --seed 1)
"$venvs/beaver1/bin/python" "$here/fixtures/reference.py" "$out/generated1.db" "$out/generated1.reference.json"
ferret_tree "$venvs/beaver1" "$out/generated1.db" > "$out/generated1.ferret-tree.txt"
settle "$out/generated1.db"
echo "wrote $out/generated1.db and its reference"
# Null durations and names, ids and tags with quotes, backslashes and control characters: spans
# recorded by ferret-io, the odd ones added to its table as it would write them; ferret's own
# results.
rm -f "$out/oddities.db" "$out/oddities.db-wal" "$out/oddities.db-shm"
"$venvs/beaver1/bin/python" "$here/fixtures/oddities.py" "$out/oddities.db"
"$venvs/beaver1/bin/python" "$here/fixtures/reference.py" "$out/oddities.db" "$out/oddities.reference.json"
settle "$out/oddities.db"
echo "wrote $out/oddities.db and its reference"
# A pre-fork service: three worker processes, a trace file each, db.query made slower at a
# known moment (workers.json); ferret's own results for each file.
"$venvs/beaver1/bin/python" "$here/fixtures/workers.py" "$out/workers" 3 120
for db in "$out"/workers/worker-*.db; do
  "$venvs/beaver1/bin/python" "$here/fixtures/reference.py" "$db" "${db%.db}.reference.json"
  settle "$db"
done
echo "wrote $out/workers and their references"
# A service with a traced main() and more than 300,000 descendants, converted while it runs: too
# big for the repository (about 120 MB), so it is made here, with ferret-io's own answers, and
# checked at once.
"$here/live-test.sh" 60000 60
