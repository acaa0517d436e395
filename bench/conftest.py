"""Benchmark session set-up (STYLE habit 14).

- Files are named ``bench_*.py`` so the normal test run (``testpaths``: ``tests`` and the package)
  never sees them; this conftest collects them when ``bench/`` is given explicitly. The other
  modules here are the benches' helpers and the scripts run with ``python -m bench.NAME``.
- The GC is frozen once everything is loaded, so a collection triggered by the benchmark loop does
  not have to walk the (large) config objects built by the fixtures.
- The CPU model, core count and load average go into the saved machine info: figures from this
  noisy shared machine are only comparable within one run.
"""

from __future__ import annotations

import gc
import os
import platform
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `tests.oracle` and `tests.conftest` are imported by the benches
    sys.path.insert(0, str(REPO))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(autouse=True)
def frozen_gc() -> None:
    """Runs after the module fixtures of each benchmark have built their tables."""
    gc.collect()
    gc.freeze()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info["cpu_model"] = cpu_model()
    machine_info["cpu_count"] = os.cpu_count()
    machine_info["loadavg_at_start"] = os.getloadavg()
