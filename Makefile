# ferret: build, test, lint, bench and fixtures. `make test` is what CI runs.
CARGO ?= cargo
EXAMPLE ?= testdata/fixtures/beaver1.db
EXAMPLE_OUT ?= target/example.ferret

.PHONY: build test lint bench bench-e2e fixtures example

build:
	$(CARGO) build --release --workspace

test:
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: bench-e2e
	$(CARGO) bench -p ferret-benches

# End-to-end against the peers; BENCH_SPANS (default 6,000,000) sets the size.
bench-e2e:
	python3 benches/e2e.py

# Regenerates testdata/fixtures with the real ferret-io (needs Python 3.13 and PyPI).
fixtures:
	tools/make-fixtures.sh

# Builds, converts the bundled real trace and prints ferret's table (the README's first command).
example: build
	target/release/ferret-convert $(EXAMPLE) -o $(EXAMPLE_OUT) --force
	target/release/ferret-scan $(EXAMPLE_OUT)
