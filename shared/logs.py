"""Structured logs: one JSON object per line, carrying the correlation id of the request or task.

Every process logs this way: the three web apps (shared.web.setup.configure_web), the Celery
worker and beat (workers.base). No Flask here: the workers use it too."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

#: The correlation id of the work in progress: set from X-Correlation-ID by the web app, and
#: from the task's argument by the workers, so one id links a POST to the projection it caused.
correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

#: A database's account of a refused row: PostgreSQL's DETAIL ("Key (email)=(…) already exists",
#: "Failing row contains (…)") and SQLAlchemy's "[parameters: …]" quote the row's values, which
#: for a read model include personal data. The engines hide parameters (make_engine); this takes
#: out whatever a driver or a wrapped error still carries, so no log line quotes a row.
_ROW_VALUES = re.compile(r"(DETAIL:|\[parameters:)[^\n]*")


def _without_row_values(text: str) -> str:
    return _ROW_VALUES.sub(lambda m: f"{m.group(1)} (withheld: may quote row values)", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": _without_row_values(record.getMessage()),
        }
        cid = getattr(record, "correlation_id", None) or correlation_id_var.get()
        if cid:
            entry["correlation_id"] = cid
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = _without_row_values(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send every log record to `stream` (stderr) as JSON lines. Idempotent."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            root.setLevel(level)
            return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
