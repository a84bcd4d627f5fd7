#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for SECONDS each (default 60), from seed corpora
# made of the golden record files and the fixtures: `make fuzz`. Needs nightly Rust (cargo fuzz
# builds with sanitizers); without it, says so and exits 0, so that CI can run it everywhere.
# A crash leaves its input in fuzz/artifacts/TARGET and fails the run.
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: no nightly Rust here (rustup toolchain install nightly); the fuzz targets did not run"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
cargo build --release --quiet -p ferret-cli
corpus=fuzz/corpus
rm -rf "$corpus"
mkdir -p "$corpus"/{read_file,scan_modes,span_json,convert_db}
for golden in testdata/golden/*.ferret; do
  cp "$golden" "$corpus/read_file/"
  cp "$golden" "$corpus/scan_modes/"
done
for db in testdata/fixtures/beaver1.db testdata/fixtures/beaver2.db testdata/fixtures/oddities.db; do
  name=$(basename "$db" .db)
  cp "$db" "$corpus/convert_db/$name.db"
  target/release/ferret-convert "$db" -o "$corpus/scan_modes/$name.ferret" --quiet
  cp "$corpus/scan_modes/$name.ferret" "$corpus/read_file/"
  # Each row's JSON, as a JSON lines file holds it.
  python3 - "$db" "$corpus/span_json/$name" <<'PY'
import sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
table = "beaver_logs" if con.execute("SELECT 1 FROM sqlite_master WHERE name='beaver_logs'").fetchone() else "__beaver_logs__"
for i, (data,) in enumerate(con.execute(f"SELECT data FROM {table} LIMIT 60")):
    open(f"{sys.argv[2]}-{i}.json", "w").write(data)
PY
done
for target in read_file scan_modes span_json convert_db; do
  echo "fuzz: $target for $seconds s ($(ls "$corpus/$target" | wc -l) seeds)"
  log=fuzz/$target.log
  status=0
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|new_units_added)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz: $target failed (exit $status); a crashing input is in fuzz/artifacts/$target" >&2
    exit 1
  fi
done
