"""The two engines every end-to-end stack runs with, and how a test names the one it is about.

The ``engine`` fixture (tests/e2e/conftest.py) is parametrised with :data:`ENGINES`: a stack
fixture that takes it starts once per engine, and every test using that stack runs against both.
A behaviour that exists for one engine only (serve's workers, serve down, the module's stats) is
marked with :func:`only_engine`: the test is parametrised with that engine alone, so it shows up as
``test_x[extproc]`` and never as a skip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from meshroute.envoy.live import files_options, generate, write_files
from meshroute.envoy.module import module_path
from meshroute.envoy.options import EMBEDDED, EXTPROC, Options

ENGINES = (EMBEDDED, EXTPROC)


def only_engine(engine: str) -> pytest.MarkDecorator:
    """Run the test (or, as ``pytestmark``, the module) with ``engine`` alone."""
    assert engine in ENGINES, engine
    return pytest.mark.parametrize("engine", [engine], indirect=True, scope="session")


def bootstrap(
    paths: Sequence[str | Path], out: Path, options: Options, engine: str
) -> tuple[Path, list[str]]:
    """The static bootstrap ``envoy-config -o OUT --engine ENGINE`` writes for ``paths`` (the
    embedded engine's filter configs and table in ``OUT.d``, as there), in-process: its path and
    the codes of the warnings envoy-config reports."""
    options = replace(options, engine=engine)
    if engine == EMBEDDED:
        options = files_options(options, f"{out}.d")
    compiled = generate([str(p) for p in paths], options)
    assert compiled.config is not None, compiled.report
    module = module_path() if engine == EMBEDDED else None  # missing: a broken install, never a skip
    config = write_files(compiled.config, f"{out}.d", engine=engine, live=False, module_file=module)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out, [w.code for w in compiled.warnings]
