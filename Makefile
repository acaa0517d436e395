# meshroute developer commands. `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

$(STAMP): pyproject.toml Cargo.toml scripts/setup.sh
	bash scripts/setup.sh
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## create .venv, install dev tools, build the Rust extension (release)

.PHONY: build
build: $(STAMP) ## rebuild the Rust extension and the Envoy module into the checkout (release)
	$(VENV)/bin/maturin develop --release --skip-install -q
	$(PY) build_backend/meshroute_build.py

.PHONY: demo
demo: build ## validate and explain the Bookinfo config shipped in the package
	$(VENV)/bin/meshroute demo

.PHONY: test
test: build ## all tests: Rust (cargo test) and Python (pytest)
	cargo test --workspace --exclude meshroute-py --quiet
	$(PY) -m pytest -q

.PHONY: lint
lint: $(STAMP) ## ruff, mypy strict, stubtest, cargo fmt --check, clippy -D warnings
	$(VENV)/bin/ruff check python tests bench build_backend
	$(VENV)/bin/ruff format --check python tests bench build_backend
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest meshroute._core --allowlist .mypy-stubtest-allowlist
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: format
format: $(STAMP) ## apply ruff format and cargo fmt
	$(VENV)/bin/ruff format python tests bench build_backend
	$(VENV)/bin/ruff check --fix python tests bench build_backend
	cargo fmt --all

.PHONY: golden
golden: build ## rewrite tests/golden/*/expected.yaml from current behaviour
	UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/test_golden.py

.PHONY: bench
bench: build ## pytest-benchmark (bench/) and criterion (rust) benchmarks
	$(PY) -m pytest bench --benchmark-enable --benchmark-only -q -p no:cacheprovider
	cargo bench -p meshroute-core --bench route

.PHONY: bench-envoy
bench-envoy: build ## Envoy alone vs Envoy + meshroute (ext_proc, embedded) under wrk (bench/README.md)
	bash scripts/bench-tools.sh
	$(VENV)/bin/meshroute bench --envoy --duration 10 --rounds 2 $(BENCH_ENVOY_ARGS)

.PHONY: help
help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'
