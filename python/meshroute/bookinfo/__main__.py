"""``python -m meshroute.bookinfo --mesh-port P --ports-file F``: every Bookinfo app in this process.

The ports file (JSON ``{"mesh_port", "ports": {"reviews-v2": 40123, ...}}``) appears once all apps
listen; the process then runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from meshroute.bookinfo import APPS, start_bookinfo, workload_entries, write_plan


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m meshroute.bookinfo", description=__doc__)
    p.add_argument("--mesh-port", type=int, required=True, help="Envoy's mesh listener on 127.0.0.1")
    p.add_argument("--ports-file", help="write the port plan here (JSON) once every app listens")
    p.add_argument("--port", action="append", default=[], metavar="APP-VERSION=PORT", help="fixed port")
    p.add_argument("--workload-entries", action="store_true", help="print the WorkloadEntry YAML")
    args = p.parse_args(argv)
    ports: dict[str, int] = {}
    for item in args.port:
        name, _, port = item.partition("=")
        if name not in APPS or not port.isdigit():
            p.error(f"--port wants APP-VERSION=PORT with APP-VERSION one of {', '.join(APPS)}")
        ports[name] = int(port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    bookinfo = start_bookinfo(args.mesh_port, ports)
    try:
        if args.ports_file:
            write_plan(args.ports_file, args.mesh_port, bookinfo.plan)
        if args.workload_entries:
            print(workload_entries(bookinfo.plan), flush=True)
        print(f"bookinfo: {bookinfo.plan} (mesh port {args.mesh_port})", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        bookinfo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
