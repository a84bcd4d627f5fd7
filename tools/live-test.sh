#!/usr/bin/env bash
# The live test: a real ferret-io service (tools/fixtures/service.py, a traced main() over
# REQUESTS requests) writes its trace while `ferret-convert --append` runs again and again on the
# growing file. Then the file so made, and every other way of converting the finished trace,
# must give ferret-io's own answers (`Report`, by tools/fixtures/reference.py): the ignored test
# `a_live_trace_converted_while_it_runs_equals_ferrets_answers` in crates/cli/tests/live.rs.
# Meanwhile `ferret-scan --watch --format json` reads the growing trace; each of its snapshots
# must count what ended in its window in the finished trace (the test
# `the_watch_of_a_live_trace_counts_what_ended_in_each_window`).
#
# Usage: tools/live-test.sh [REQUESTS [SECONDS]]  (default 6000 requests, about 33,000 spans,
# spread over 8 s; `make fixtures` runs 60,000, more than 300,000 descendants of main).
# Needs Python 3.13 and PyPI, like tools/make-fixtures.sh. Leaves its files in target/live.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/fixtures/python.sh"
requests=${1:-6000}
seconds=${2:-8}
venv=$(ferret_venv 1.3.0 "${FERRET_VENVS:-$root/target/fixture-venvs}")
work=$root/target/live
rm -rf "$work"
mkdir -p "$work"
db=$work/service.db
out=$work/live.ferret
cd "$root"
cargo build --release --quiet -p ferret-cli
convert=$root/target/release/ferret-convert

# One conversion of the file as it stands: the first creates the record file, the others append.
# Before ferret-io's first flush the database has no trace yet: that alone may fail.
conversions=0
convert_now() {
  if [ -f "$out" ]; then
    "$convert" "$db" -o "$out" --append --quiet
    conversions=$((conversions + 1))
  elif [ -f "$db" ] && "$convert" "$db" -o "$out" --quiet 2>/dev/null; then
    conversions=$((conversions + 1))
  fi
}

SECONDS=0
"$venv/bin/python" "$here/fixtures/service.py" "$db" "$requests" "$seconds" \
  2> >(sort | uniq -c >&2) &
service=$!
watch=
while kill -0 "$service" 2>/dev/null; do
  convert_now
  # Once the trace has spans, a live view reads it as it grows: six refreshes a second apart
  # over 3 s windows, as JSON lines (its own sidecar, beside the database).
  if [ -z "$watch" ] && [ -f "$out" ]; then
    date +%s.%N > "$work/watch.started"
    (
      "$root/target/release/ferret-scan" "$db" --watch --format json --interval 1s \
        --window 3s --count 6 > "$work/watch.jsonl"
      date +%s.%N > "$work/watch.ended"
    ) &
    watch=$!
  fi
  sleep 0.3
done
wait "$service"
convert_now
[ -n "$watch" ] && wait "$watch"
echo "live-test: $requests requests written in ${SECONDS} s; converted $conversions times while the trace grew"
[ "$conversions" -ge 4 ] || { echo "live-test: only $conversions conversions ran during the trace" >&2; exit 1; }
"$venv/bin/python" "$here/fixtures/reference.py" "$db" "$work/service.reference.json"
FERRET_LIVE_DB=$db FERRET_LIVE_FERRET=$out \
  "$here/one-test.sh" live::a_live_trace_converted_while_it_runs_equals_ferrets_answers
FERRET_LIVE_DB=$db FERRET_LIVE_WATCH=$work \
  "$here/one-test.sh" live::the_watch_of_a_live_trace_counts_what_ended_in_each_window
