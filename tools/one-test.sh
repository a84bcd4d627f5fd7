#!/usr/bin/env bash
# Runs the one ignored end-to-end test named $1 (module::name, exactly) and fails unless it ran:
# a filter that matches nothing would otherwise pass as "0 passed". Extra arguments go to cargo.
set -euo pipefail
name=${1:?usage: tools/one-test.sh MODULE::TEST}
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test -p ferret-cli --test tests "$@" -- --ignored --exact "$name" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || exit "$status"
if ! grep -q "^test result: ok\. 1 passed" "$log"; then
  echo "one-test: $name did not run (no test of that name): $(grep '^test result' "$log")" >&2
  exit 1
fi
