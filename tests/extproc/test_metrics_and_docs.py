"""The declared metrics (the modules' docstring examples run under pytest --doctest-modules)."""

from __future__ import annotations

from prometheus_client import generate_latest

from meshroute.metrics import DECLARED, DESCRIPTIONS, OUTCOMES, Metrics


def test_every_metric_has_a_one_line_description() -> None:
    assert set(DESCRIPTIONS) == {d.name for d in DECLARED}
    for name, text in DESCRIPTIONS.items():
        assert text and "\n" not in text, name


def test_every_outcome_has_a_counter_and_a_status_key() -> None:
    m = Metrics()
    for outcome in OUTCOMES:
        m.decisions[outcome].inc()
    snapshot = m.snapshot()
    assert all(snapshot[f"decisions_{o}"] == 1 for o in OUTCOMES)
    m.decisions["something_new"].inc()  # an outcome the core may add later: bound on first use
    assert m.snapshot()["decisions_something_new"] == 1


def test_status_keys_are_the_ones_serve_always_reported() -> None:
    keys = set(Metrics().snapshot())
    assert {"streams_started", "streams_failed", "reloads_ok", "reloads_rejected", "faults_delay",
            "faults_abort", "response_headers", "other_messages", "compiles"} <= keys  # fmt: skip


def test_prometheus_text_names() -> None:
    m = Metrics()
    m.streams.inc()
    m.decisions["no_route"].inc()
    m.reloads_ok.inc()
    m.generation(0).set(3)
    m.stream_seconds.observe(0.0004)
    text = generate_latest(m.registry).decode()
    for line in [
        "meshroute_streams_total 1.0",
        'meshroute_decisions_total{outcome="no_route"} 1.0',
        'meshroute_decisions_total{outcome="route"} 0.0',
        'meshroute_reloads_total{result="ok"} 1.0',
        'meshroute_config_generation{worker="0"} 3.0',
        'meshroute_stream_seconds_bucket{le="0.0005"} 1.0',
        "meshroute_stream_seconds_count 1.0",
    ]:
        assert line in text.splitlines(), line
