# The two commands of the README: `make demo` and `make test`. Both install what they need.
.PHONY: demo test test-rust test-python fuzz-short bench bootstrap slow iot-lib lint lint-rust lint-python

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	@.venv/bin/python -m tfnode demo

test: bootstrap lint test-rust test-python fuzz-short

test-rust:
	cargo test --workspace --exclude tfnode-py

# The gateway C library (tfnode/gateway/include/tfnode_iot.h) that tests/test_iot_ffi.py loads with cffi.
test-python:
	cargo build --release -p tfnode-iot-ffi
	.venv/bin/python -m pytest -q

# Formatting, lints and types (docs/development.md): the rule sets live in rustfmt.toml,
# Cargo.toml ([workspace.lints]) and pyproject.toml ([tool.ruff], [tool.mypy]).
lint: lint-rust lint-python

# The Python half: ruff's rules and layout over the repository, mypy over tfnode/.
lint-python: bootstrap
	.venv/bin/ruff check
	.venv/bin/ruff format --check
	.venv/bin/mypy

fuzz-short:
	@bash scripts/fuzz.sh short

# Long runs, never in CI by default. TFNODE_SLOW=1 turns on, among others, the long run of the
# contract runtime's differential determinism fuzzer (tests/test_runtime_difffuzz.py).
slow: bootstrap
	TFNODE_SLOW=1 $(MAKE) test-rust test-python
	TWINS_SCENARIOS=1000000 cargo test --release -p tfnode-consensus twins_many -- --ignored
	CHAOS_SEEDS=4000 cargo test -p tfnode-consensus chaos_many -- --ignored
	@bash scripts/fuzz.sh long

bench: bootstrap
	.venv/bin/python benches/crypto_speed.py
	.venv/bin/python -m tfnode bench --validators 4 --duration 30

# The gateway C library alone (target/release/libtfnode_iot_ffi.so).
iot-lib:
	cargo build --release -p tfnode-iot-ffi

# The Rust half of the lint gate: formatting, then clippy with the workspace lints of
# Cargo.toml as errors, for the workspace and for the fuzz crate (a workspace of its own).
# The core's RocksDB binding (feature `rocksdb`) is linted in the release profile, where the
# bootstrap built RocksDB already, when the core was built with it.
lint-rust:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	if .venv/bin/python -c "import sys, tfnode._core as c; sys.exit(not c.rocks_library()[0])" 2>/dev/null; then \
		cargo clippy --release -p tfnode-py --features rocksdb -- -D warnings; fi
	cd fuzz && cargo fmt --check && cargo clippy --all-targets -- -D warnings
