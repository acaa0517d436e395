"""Runs the examples in the public docstrings, so the documentation stays true."""

from __future__ import annotations

import doctest
import importlib

import pytest

import meshroute

MODULES = [
    "meshroute",
    "meshroute.mesh",
    "meshroute.config.diagnostics",
    "meshroute.config.model",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    globs = {"load": meshroute.load, "bookinfo_path": meshroute.bookinfo_path, "meshroute": meshroute}
    result = doctest.testmod(module, extraglobs=globs, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
