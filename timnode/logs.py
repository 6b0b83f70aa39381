"""Logging setup: text lines by default, JSON lines with ``--log-format json``.

Every record passes a :class:`ContextFilter` that copies the request id of the client
request being served (``c12/r34``: connection 12, request id 34; ``im.gateway.REQUEST_ID``)
onto the record, so ``grep c12/r34`` finds everything one request logged. Text lines show
it in brackets after the logger name; JSON lines carry it as ``request_id``.

Secrets (passwords, session and admin tokens, keys) and message bodies are never passed to
the logger by timnode code; the formatters add nothing beyond the record's own fields.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar

__all__ = ["setup_logging", "JsonFormatter", "TextFormatter", "ContextFilter"]

_EXTRA_FIELDS = ("request_id", "peer", "user", "device", "code")


class ContextFilter(logging.Filter):
    """Copies context variables (the request id) onto every record that lacks them."""

    def __init__(self, fields: dict[str, ContextVar[str]]) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in self.fields.items():
            if not getattr(record, name, ""):
                value = var.get()
                if value:
                    setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and known extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in _EXTRA_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``asctime LEVEL logger [request id]: message``; the bracket only when a request is served."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(rid)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", "")
        record.rid = f" [{rid}]" if rid else ""
        return super().format(record)


def setup_logging(level: str, fmt: str) -> None:
    from im.gateway import REQUEST_ID

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter({"request_id": REQUEST_ID}))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("websockets").setLevel(max(logging.WARNING, root.level))
