"""The examples in meshroute.envoy's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["meshroute.envoy", "meshroute.envoy.common", "meshroute.envoy.clusters"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
