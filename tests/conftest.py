"""Common fixtures: where Istio's sample config lives (``tests/data``), and quick loaders."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"  # test data shipped in the repo; provenance and licence: DATA / "SOURCE.md"
SAMPLES = DATA / "istio-samples"  # unmodified copies of Istio's samples, validation data, task snippets
BOOKINFO = SAMPLES / "bookinfo"

# A missing data dir is a broken checkout: fail loudly at import, never skip.
assert (BOOKINFO / "platform" / "kube" / "bookinfo.yaml").is_file(), f"{SAMPLES} is missing or incomplete"


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES
