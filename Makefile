# ferret: build, test, lint, bench and fixtures. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
EXAMPLE ?= testdata/fixtures/beaver1.db

.PHONY: bench-python fuzz check-references bench-watch bench-verdicts readme-example build test test-live test-browser test-wheel test-pip wheel lint bench bench-e2e bench-live memtest memtest-ci fixtures example

build:
	$(CARGO) build --release --workspace

# Every test (no doc tests: there are none), then the live test, then the wheel's (both tools
# and the Python module's pytest tests, from a fresh virtualenv: tools/wheel.sh test); ends with
# one total line (cargo's and pytest's counts), keeping the status. The Rust tests read our
# Parquet back with pyarrow, from the Python that tools/test-python.sh makes.
test:
	@mkdir -p target
	set -o pipefail; { export FERRET_TEST_PYTHON=$$(tools/test-python.sh) && $(CARGO) test --workspace --exclude ferret-python --lib --bins --tests && tools/live-test.sh && tools/wheel.sh test; } 2>&1 | tee target/test.log; \
	status=$$?; \
	awk '/^test result:/ { p += $$4; f += $$6; next } /[0-9]+ (passed|failed).* in [0-9.]+s/ { for (i = 2; i <= NF; i++) { if ($$i ~ /^passed/) p += $$(i-1); if ($$i ~ /^failed/) f += $$(i-1) } } END { print "tests: " p " passed, " f " failed" }' target/test.log; \
	exit $$status

# The --html page in a real browser: Debian's headless chromium (installed when missing, as
# root) renders it from disk; the screenshot is kept in target/tmp/browser/report.png.
test-browser:
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
	tools/one-test.sh html::the_html_page_renders_in_a_real_browser

# The Python wheel of both tools (pyproject.toml, maturin), in target/wheels.
wheel:
	tools/wheel.sh build

# Installs the wheel into a fresh Python 3.13 virtualenv, runs both tools from it on the fixtures,
# then the module's pytest tests (crates/python/tests); the last step of `make test`.
test-wheel:
	tools/wheel.sh test

# `pip install .` from the repository root into a fresh virtualenv (a full rebuild in pip's
# isolated environment, so not in CI).
test-pip:
	tools/wheel.sh source

# A real ferret-io service converted with --append while it runs, checked against ferret-io's
# own answers (needs Python 3.13 and PyPI; tools/live-test.sh).
test-live:
	tools/live-test.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Every benchmark page, each stamped with its date, commit, machine and command: criterion's hot
# paths, then RESULTS.md (end to end, against the peers), LIVE.md (against FERRET_BASELINE's build)
# MEMTEST.md (in a memory cgroup), WATCH.md and PYTHON.md; the verdicts' calibration is printed last.
FERRET_BASELINE ?= c21f94a
bench:
	$(CARGO) bench -p ferret-benches
	$(MAKE) bench-e2e
	$(MAKE) bench-live
	$(MAKE) memtest
	$(MAKE) bench-watch
	$(MAKE) bench-python
	$(MAKE) bench-verdicts

# A live view of a big trace that grows (writes benches/WATCH.md): refresh cost and memory.
bench-watch:
	python3 benches/watch.py

# The Python module on the bench trace beside the CLI (writes benches/PYTHON.md): functions()
# against `--format json`, spans() streamed into DuckDB in bounded memory.
bench-python:
	python3 benches/python.py

# How well the comparison's verdicts are calibrated, on generated pairs of runs whose truth is
# known (the README quotes this output).
bench-verdicts:
	$(CARGO) run --release -q -p ferret-benches --bin verdicts

# The README's comparison example: a generated service trace of two runs, compared.
readme-example: build
	python3 tools/readme-example.py

# End-to-end against the peers; BENCH_SPANS (default 6,000,000) sets the size.
bench-e2e:
	python3 benches/e2e.py

# What exactness on live traces costs: --append of 1% onto the bench trace, 10^5-deep chains in
# both orders; the build of git revision FERRET_BASELINE (default: the commit before this round of
# work) side by side with this one (writes benches/LIVE.md).
bench-live:
	FERRET_BASELINE=$(FERRET_BASELINE) python3 benches/live.py

# A 2.3 GB trace converted and scanned, each step in a 1 GiB memory cgroup (writes benches/MEMTEST.md).
memtest:
	python3 benches/memtest.py

# The CI-sized memory test: 500,000 spans, the scans in a 64 MiB cgroup.
memtest-ci:
	python3 benches/memtest.py --ci

# Every fuzz target (record reader, every scan mode, span JSON, SQLite files converted) for
# FUZZ_SECONDS each, from seeds made of the golden files and fixtures (tools/fuzz.sh; nightly
# Rust and cargo-fuzz, installed when missing).
FUZZ_SECONDS ?= 60
fuzz:
	tools/fuzz.sh $(FUZZ_SECONDS)

# ferret-io's own analyzer run again on every committed fixture must still give the committed
# reference JSON the tests compare against (Python 3.13 and PyPI; in CI).
check-references:
	tools/check-references.sh

# Regenerates testdata/fixtures with the real ferret-io (needs Python 3.13 and PyPI).
fixtures:
	tools/make-fixtures.sh

# Builds, then scans a copy of the bundled real trace straight from its .db (the first time
# converts it into a sidecar beside the copy, later times only add new rows): the README's first
# command.
example: build
	@mkdir -p target/example && cp -p $(EXAMPLE) target/example/
	target/release/ferret-scan target/example/$(notdir $(EXAMPLE))
