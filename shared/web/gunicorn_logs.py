"""gunicorn's own log records in the apps' JSON lines (config/gunicorn.conf.py: `logger_class`)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from shared.logs import JsonFormatter


class JsonLogger(Logger):
    """gunicorn's logger with its handlers' text formats replaced by shared.logs.JsonFormatter
    (and with it the scrubbing of row values from messages and tracebacks), so one parser reads
    a service's whole log. Everything else is gunicorn's: where the error log goes, --log-level,
    and the access log only when --access-logfile asks for it (off here: client addresses, and
    sign-in links carry tokens in their URLs). Runs again on a configuration reload."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = JsonFormatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)
