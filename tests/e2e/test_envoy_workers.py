"""`serve --workers 2` behind the Envoy `envoy-config --workers 2` writes: Envoy spreads the ext_proc
streams over both worker sockets, and a reload reaches every worker.

Extproc only, by nature: the embedded engine has no serve workers (it decides on Envoy's own
worker threads)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshroute.envoy.options import EXTPROC
from meshroute.procs import ProcessGroup
from tests.e2e.engines import only_engine
from tests.e2e.feature_stack import FeatureStack

pytestmark = only_engine(EXTPROC)


@pytest.fixture(scope="module")
def two_workers(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureStack]:
    work = tmp_path_factory.mktemp("workers")
    with ProcessGroup(work / "logs") as group:
        stack = FeatureStack(work, group, workers=2, engine=engine)
        try:
            yield stack
        finally:
            stack.close()


def test_streams_reach_both_workers(two_workers: FeatureStack) -> None:
    assert all(two_workers.mesh("echo.test", "/v1").status == 200 for _ in range(40))
    started: list[int] = []

    def counted_by_both() -> bool:
        started[:] = [int(s.get("counters", {}).get("streams_started", 0)) for s in two_workers.statuses()]
        return sum(started) >= 40 and all(started)

    assert two_workers.serve is not None
    # workers rewrite their status at most once a second
    two_workers.serve.wait_until(counted_by_both, 5, "40 streams counted over both workers")


def test_reload_reaches_every_worker(two_workers: FeatureStack) -> None:
    to_v2 = two_workers.config_text.replace(
        "{uri: {exact: /}}]\n    route: [{destination: {host: echo.test, subset: v1}}]",
        "{uri: {exact: /}}]\n    route: [{destination: {host: echo.test, subset: v2}}]",
    )
    assert to_v2 != two_workers.config_text
    two_workers.apply(to_v2)
    servers = {two_workers.mesh("echo.test", "/v1").header("x-echo-server") for _ in range(20)}
    assert servers == {"v2"}
