"""The declared counters, and the examples in the ext_proc modules' docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

from meshroute.metrics import DESCRIPTIONS, METRICS, Metrics


def test_every_counter_has_a_one_line_description() -> None:
    assert set(DESCRIPTIONS) == set(Metrics().snapshot())
    for name, text in DESCRIPTIONS.items():
        assert text and "\n" not in text, name


def test_every_outcome_has_a_counter() -> None:
    m = Metrics()
    for outcome in ("route", "abort", "redirect", "direct_response", "no_route", "no_cluster"):
        m.count_decision(outcome)
    assert all(v == 1 for k, v in m.snapshot().items() if k.startswith("decisions_"))
    assert isinstance(METRICS, Metrics)


@pytest.mark.parametrize(
    "name",
    [
        "meshroute.metrics",
        "meshroute.extproc",
        "meshroute.extproc.request",
        "meshroute.extproc.policy",
        "meshroute.extproc.per_request",
        "meshroute.extproc.cors",
        "meshroute.extproc.answer",
        "meshroute.extproc.context",
    ],
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
