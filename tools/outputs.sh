#!/usr/bin/env bash
# Writes what ferret-scan prints for a fixed set of questions on the bundled fixtures into
# OUT (one file per question), for checking that a change of structure changes no output:
#   tools/outputs.sh target/outputs-before    # on the commit before
#   tools/outputs.sh target/outputs-after     # on the commit after
#   diff -r target/outputs-before target/outputs-after
# BIN (default target/release) names the folder of the binaries. Times a scan took are masked.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "${1:?usage: tools/outputs.sh OUT}"
out=$(cd "$1" && pwd)
bin=$(cd "${BIN:-$root/target/release}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Paths are relative to the work folder, so that nothing printed names a temporary path.
cd "$work"
mask() { sed -E 's/in [0-9.]+ s \([0-9.]+M spans\/s\)/in <secs>/; s/[0-9]+\.[0-9]+ s\b/<secs> s/g'; }
for db in beaver1 beaver2 generated1; do
  cp "$root/testdata/fixtures/$db.db" "$db.db"
  rec="$db.ferret"
  "$bin/ferret-convert" "$db.db" -o "$rec" --quiet
  runs=$("$bin/ferret-scan" "$rec" --runs --format json | python3 -c 'import json,sys; print(" ".join(r["run_id"] for r in json.load(sys.stdin)))')
  base=${runs%% *}
  q() { local name=$1; shift; "$bin/ferret-scan" "$rec" "$@" 2>"$out/$db.$name.err" | mask >"$out/$db.$name"; mask <"$out/$db.$name.err" >"$out/$db.$name.err.m"; mv "$out/$db.$name.err.m" "$out/$db.$name.err"; }
  q table
  q table-all --limit 0
  q json --format json --limit 0
  q csv --format csv --limit 0
  q sort-self --sort self --limit 0
  q runs --runs
  q runs-json --runs --format json
  q filtered --name '^[a-m]' --status error --format json --limit 0
  q tree --tree --limit 3
  q tree-json --tree --limit 3 --format json
  q tree-small --tree --limit 2 --max-nodes 5
  q folded --folded
  q timeline-json --timeline --format json
  q timeline-csv --timeline --format csv
  q baseline --baseline "$base" --format json --limit 0
  q chrome --tree --limit 2 --chrome-trace "$db.chrome.json"
  q parquet --to-parquet "$db.parquet"
  q html --html "$db.html"
  mv "$db.chrome.json" "$db.parquet" "$out/"
  mask <"$db.html" >"$out/$db.html"
done
echo "$out: $(ls "$out" | wc -l) outputs"
