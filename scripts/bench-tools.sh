#!/usr/bin/env bash
# Load generators for `make bench-envoy`: installs wrk (Debian/Ubuntu apt) when it is missing.
# The tests never need it: without wrk the harness falls back to a small Python client.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
  echo "wrk: $(command -v wrk)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "bench-tools: wrk is missing and apt-get is not available; install wrk yourself" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "bench-tools: wrk is missing; run 'apt-get install -y wrk' as root" >&2
    exit 1
  fi
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
echo "wrk: $(command -v wrk)"
