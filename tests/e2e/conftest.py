"""The ``engine`` every end-to-end stack is started with, and the Bookinfo stack.

``engine`` is session-scoped, so pytest runs the tests grouped by engine and each stack fixture
(module-scoped, taking ``engine``) starts once per engine; see tests/e2e/engines.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshroute.stack import Stack
from tests.e2e.engines import ENGINES


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """``embedded`` (the module inside Envoy) or ``extproc`` (Envoy + ``meshroute serve``)."""
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def bookinfo(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Started on first use; every process is stopped when the module's tests are done."""
    with Stack(work=tmp_path_factory.mktemp(f"bookinfo-{engine}"), engine=engine) as stack:
        yield stack
