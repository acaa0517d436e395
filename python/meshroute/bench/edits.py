"""How long one edited resource takes to serve, on the mesh ``meshroute bench --scale`` generates.

In a fresh process: a :class:`~meshroute.mesh.MeshSession` loads the mesh, then edits are written
one at a time — a VirtualService's 90/10 split becomes 0/100 (then back), a DestinationRule's
connection pool changes — and each is timed from the moment the file is written to the moment
the session's new table answers a request, the request checked to see the edit (every request to
the edited service goes to v2, or the new pool size is in the decision). Edits go to files in turn
(each namespace file once), so none is already parsed.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

EDITS = 6  # of each kind, each in another namespace file

Json = dict[str, Any]


def _vs_edit(text: str, i: int, undo: bool) -> str:
    old, new = ("weight: 90", "weight: 0") if not undo else ("weight: 0", "weight: 90")
    a, b = ("weight: 10", "weight: 100") if not undo else ("weight: 100", "weight: 10")
    start = text.index(f"hosts: [svc{i}]")
    at = text.index(old, start)
    text = text[:at] + new + text[at + len(old) :]
    at = text.index(a, at)
    return text[:at] + b + text[at + len(a) :]


def _dr_edit(text: str, i: int, size: int) -> str:
    start = text.index(f"host: svc{i}\n")
    at = text.index("maxConnections: ", start)
    end = text.index("}", at)
    return text[:at] + f"maxConnections: {size}" + text[end:]


def measure_edits(directory: str, edits: int = EDITS) -> Json:
    """The edit timings (ms) for the mesh in ``directory`` (written by ``write_mesh``)."""
    from meshroute.mesh import MeshSession

    root = Path(directory)
    files = sorted(root.glob("ns*.yaml"))
    session = MeshSession(root)
    start = time.perf_counter()
    session.refresh()
    first = time.perf_counter() - start
    out: dict[str, list[float]] = {"vs": [], "dr": []}
    kinds: list[str] = []
    for k in range(edits * 2):
        path = files[k % len(files)]
        i = k % len(files)  # svc{i} lives in ns{i:02d}.yaml (the first service of the file)
        text = path.read_text()
        kind = "vs" if k % 2 == 0 else "dr"
        size = 1000 + k
        changed = _vs_edit(text, i, undo=False) if kind == "vs" else _dr_edit(text, i, size)
        path.write_text(changed)
        t0 = time.perf_counter()
        mesh = session.refresh()
        decision = mesh.route(f"svc{i}.ns{i}", "/", source_namespace="ns1", seed=k).to_dict()
        elapsed = time.perf_counter() - t0
        kinds.append(session.last.kind)
        if kind == "vs":
            assert decision["destination"]["subset"] == "v2", decision
            path.write_text(_vs_edit(changed, i, undo=True))  # back, for the next round
            session.refresh()
        else:
            assert decision["traffic_policy"]["connectionPool"]["tcp"]["maxConnections"] == size, decision
        out[kind].append(elapsed * 1000)
    return {
        "first_load_s": first,
        "kinds": sorted(set(kinds)),
        **{
            f"{kind}_ms": {"median": statistics.median(ms), "max": max(ms), "samples": ms}
            for kind, ms in out.items()
        },
    }
