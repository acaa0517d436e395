"""serve's logging: ``--log-format text`` (one human line) or ``json`` (one JSON object per line).

Everything serve reports goes through the standard ``logging`` module (logger ``meshroute.serve``;
grpc's Python loggers too), so both formats carry the same records. A JSON line holds ``ts``
(UTC, ISO 8601), ``level``, ``logger``, ``msg``, ``pid``, the process context (``worker`` in a
serve worker, :data:`CONTEXT`), the record's ``extra`` fields (``generation``, ``errors``,
``address``, ``compile_ms``...) and ``exc`` when an exception is attached.

>>> record = logging.LogRecord("meshroute.serve", logging.INFO, "x.py", 1, "reloaded: %d", (2,), None)
>>> record.generation = 2
>>> line = json.loads(JsonFormatter().format(record))
>>> (line["level"], line["logger"], line["msg"], line["generation"])
('info', 'meshroute.serve', 'reloaded: 2', 2)
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
# Fields of every LogRecord: anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Set once per process (the worker index in a serve worker); added to every JSON line.
CONTEXT: dict[str, Any] = {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
            **CONTEXT,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_logging(log_format: str = "text") -> None:
    """Log INFO and above to stderr in ``log_format``, unless the process configured logging."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
