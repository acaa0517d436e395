"""Reloads compile in another process: what comes back must rebuild exactly the same routing."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest

from meshroute.errors import ConfigError
from meshroute.extproc.context import listener_from_metadata
from meshroute.extproc.reload import Holder, Reloader, compile_config, compile_routing, routing_from
from meshroute.extproc.servicer import header_pairs

from .conftest import DATA, TASKS, headers_request

PATHS = [str(DATA / "bookinfo"), str(TASKS / "virtual-service-reviews-test-v2.yaml")]


def test_compiled_config_is_small_and_rebuilds_the_same_answers() -> None:
    compiled = compile_config(PATHS)
    assert compiled.ir_json is not None
    received = pickle.loads(pickle.dumps(compiled))  # what crosses the process boundary
    local, remote = compile_routing(PATHS, seed=3), routing_from(received, seed=3)
    mesh = listener_from_metadata([("x-meshroute-listener", "mesh")])
    gateway = listener_from_metadata([("x-meshroute-listener", "gateway"), ("x-meshroute-port", "8080")])
    for listener, authority, path, headers in [
        (mesh, "reviews:9080", "/reviews/0", [("end-user", "jason")]),
        (mesh, "reviews:9080", "/reviews/0", []),
        (gateway, "bookinfo.example", "/productpage", []),
        (gateway, "bookinfo.example", "/nope", []),
    ]:
        pairs = header_pairs(headers_request(authority, path, headers=headers).request_headers)
        assert local.respond(pairs, listener) == remote.respond(pairs, listener)


def test_a_config_with_errors_comes_back_as_its_diagnostics(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b}\n"
                   "spec: {hosts: [], http: [{}]}\n")  # fmt: skip
    compiled = compile_config([str(bad)])
    assert compiled.ir_json is None and any(d.is_error for d in compiled.diagnostics)
    with pytest.raises(ConfigError):
        routing_from(compiled)


def test_reloader_compiles_in_a_child_process(tmp_path: Path) -> None:
    config = tmp_path / "vs.yaml"
    config.write_text((TASKS / "virtual-service-reviews-test-v2.yaml").read_text())
    paths = [str(DATA / "bookinfo"), str(config)]
    holder = Holder(compile_routing(paths))
    reloader = Reloader(paths, holder)
    try:
        config.write_text((TASKS / "virtual-service-reviews-v3.yaml").read_text())
        assert asyncio.run(reloader.reload()) is True
        assert reloader._compiler is not None  # the compile process exists and is reused
        pid = next(iter(reloader._compiler._processes))
        assert asyncio.run(reloader.reload()) is True  # the same content: nothing to swap
        assert next(iter(reloader._compiler._processes)) == pid
    finally:
        reloader.close()
    d = holder.routing.mesh.route("reviews", "/", headers={"end-user": "jason"})
    assert (holder.generation, d.subset) == (2, "v3")


def test_one_compile_serves_every_follower_even_one_that_missed_an_update(tmp_path: Path) -> None:
    import os

    from meshroute.extproc.reload import Follower, Publisher
    from meshroute.metrics import Metrics

    config = tmp_path / "vs.yaml"
    config.write_text((TASKS / "virtual-service-reviews-test-v2.yaml").read_text())
    paths = [str(DATA / "bookinfo"), str(config)]
    routing = compile_routing(paths)
    update = str(tmp_path / "update.pickle")
    pipes = [os.pipe() for _ in range(2)]
    for _r, w in pipes:
        os.set_blocking(w, False)
    publisher = Publisher(paths, update, {i: w for i, (_r, w) in enumerate(pipes)}, metrics=Metrics())
    holders = [Holder(routing, metrics=Metrics(), worker=i) for i in range(2)]
    followers = [Follower(h, update, r) for h, (r, _w) in zip(holders, pipes, strict=True)]
    try:
        config.write_text((TASKS / "virtual-service-reviews-v3.yaml").read_text())
        assert publisher.check() is True
        asyncio.run(followers[0].follow())  # worker 0 takes generation 2 at once
        assert (holders[0].generation, holders[1].generation) == (2, 1)
        config.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b}\n"
                          "spec: {hosts: [], http: [{}]}\n")  # fmt: skip
        assert publisher.check() is False
        assert publisher.check() is None  # unchanged: nothing compiled
        for follower in followers:  # worker 1 missed generation 2: it gets it with the rejection
            assert os.read(follower.fd, 16)  # woken up
            asyncio.run(follower.follow())
    finally:
        publisher.close()
        for follower in followers:
            follower.close()
    assert publisher.metrics.snapshot()["compiles"] == 2  # one per change, for both workers
    for holder in holders:
        assert (holder.generation, holder.attempts, holder.ok) == (2, 3, False)
        assert holder.errors
        assert holder.routing.mesh.route("reviews", "/", headers={"end-user": "jason"}).subset == "v3"
        counters = holder.metrics.snapshot()
        assert (counters["reloads_ok"], counters["reloads_rejected"], counters["compiles"]) == (2, 1, 0)


def _edited(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new, 1))


def test_an_edit_reaches_the_served_table_as_a_patch(tmp_path: Path) -> None:
    """serve primes its compile process with the files it loaded itself; an edit that keeps the
    VirtualService's shape then comes back as a patch applied to the served table."""
    config = tmp_path / "vs.yaml"
    config.write_text((TASKS / "virtual-service-reviews-test-v2.yaml").read_text())
    paths = [str(DATA / "bookinfo"), str(config)]
    holder = Holder(compile_routing(paths))
    reloader = Reloader(paths, holder)
    try:
        asyncio.run(reloader.prime())
        assert holder.tag is not None
        _edited(config, "subset: v2", "subset: v3")  # a subset no route used before: new clusters
        assert asyncio.run(reloader.reload()) is True
        assert holder.last_change == "patch"
        jason = holder.routing.mesh.route("reviews", "/", headers={"end-user": "jason"})
        assert (jason.subset, jason.outcome) == ("v3", "route")
        _edited(config, "subset: v3", "subset: nope")  # undefined subset: still a patch, 503
        assert asyncio.run(reloader.reload()) is True
        assert holder.last_change == "patch"
        assert (
            holder.routing.mesh.route("reviews", "/", headers={"end-user": "jason"}).outcome == "no_cluster"
        )
        config.write_text(config.read_text().replace("name: reviews", "name: reviews-2"))  # another resource
        assert asyncio.run(reloader.reload()) is True
        assert holder.last_change == "full"
    finally:
        reloader.close()
    assert holder.generation == 4
    assert holder.routing.mesh.route("reviews", "/", headers={"end-user": "bob"}).subset == "v1"


def test_workers_apply_the_patches_they_missed(tmp_path: Path) -> None:
    import os

    from meshroute.extproc.reload import Follower, Publisher
    from meshroute.metrics import Metrics

    config = tmp_path / "vs.yaml"
    config.write_text((TASKS / "virtual-service-reviews-test-v2.yaml").read_text())
    paths = [str(DATA / "bookinfo"), str(config)]
    routing = compile_routing(paths, keep_session=True)
    update = str(tmp_path / "update.pickle")
    pipes = [os.pipe() for _ in range(2)]
    for _r, w in pipes:
        os.set_blocking(w, False)
    publisher = Publisher(
        paths, update, {i: w for i, (_r, w) in enumerate(pipes)}, metrics=Metrics(), routing=routing
    )
    holders = [Holder(routing, metrics=Metrics(), worker=i) for i in range(2)]
    for h in holders:
        h.tag = routing.tag
    followers = [Follower(h, update, r) for h, (r, _w) in zip(holders, pipes, strict=True)]
    try:
        _edited(config, "subset: v2", "subset: v3")
        assert publisher.check() is True
        asyncio.run(followers[0].follow())
        _edited(config, "exact: jason", "exact: kim")
        assert publisher.check() is True
        for follower in followers:  # worker 1 missed the first patch: it applies both
            asyncio.run(follower.follow())
    finally:
        publisher.close()
        for follower in followers:
            follower.close()
    for holder in holders:
        assert (holder.generation, holder.last_change) == (3, "patch")
        assert holder.routing.mesh.route("reviews", "/", headers={"end-user": "kim"}).subset == "v3"
        assert holder.routing.mesh.route("reviews", "/", headers={"end-user": "jason"}).subset == "v1"
