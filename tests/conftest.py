"""Shared fixtures: where Istio's sample config lives, and quick loaders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """`shared/` beside the repo (CI lays a copy there); MESHROUTE_SHARED overrides.

    A missing shared/ is a broken checkout, so this fails rather than skips.
    """
    env = os.environ.get("MESHROUTE_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared", REPO.parent.parent / "shared"]
    for path in candidates:
        if (path / "istio-samples").is_dir():
            return path
    raise RuntimeError(f"shared/istio-samples not found (looked in {candidates}); set MESHROUTE_SHARED")


SHARED = shared_dir()
SAMPLES = SHARED / "istio-samples"
BOOKINFO = SAMPLES / "bookinfo"


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES
