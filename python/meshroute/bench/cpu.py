"""CPU time of a process and everything it started, from ``/proc/<pid>/stat``."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone, or not Linux
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def session_cpu_seconds(sid: int) -> float:
    """utime + stime of the live processes in session ``sid``.

    ``procs.Proc`` starts each child in a new session (sid = its pid), so this counts a server and
    the workers it forked. A worker that exits during a measurement loses its share; the harness
    reports the number of processes seen so that this would show.
    """
    return sum(cpu for cpu in _session(sid).values())


def session_pids(sid: int) -> list[int]:
    return sorted(_session(sid))


def _session(sid: int) -> dict[int, float]:
    out: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        # After the name: state(0) ppid(1) pgrp(2) session(3) ... utime(11) stime(12).
        if fields is None or int(fields[3]) != sid:
            continue
        out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


class CpuMeter:
    """CPU seconds per named process session between ``start()`` and ``stop()``."""

    def __init__(self, sessions: dict[str, int]):
        self.sessions = dict(sessions)
        self._start: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: session_cpu_seconds(sid) for name, sid in self.sessions.items()}

    def stop(self) -> dict[str, float]:
        return {
            name: max(0.0, session_cpu_seconds(sid) - self._start[name])
            for name, sid in self.sessions.items()
        }
