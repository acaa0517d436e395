"""The Bookinfo stack (apps + ``meshroute serve`` + Envoy), started once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshroute.stack import Stack


@pytest.fixture(scope="session")
def bookinfo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Started on first use; every process is stopped at session end, whatever happened."""
    with Stack(work=tmp_path_factory.mktemp("bookinfo")) as stack:
        yield stack
