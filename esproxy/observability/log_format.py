"""esproxy's own log lines as JSON, under `[log] format = "json"`, like its access log."""

from __future__ import annotations

import logging
import time

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(fields).decode()


def use_log_format(log_format: str) -> None:
    """Switch the root handlers' format; `text` keeps what the CLI configured."""
    if log_format != "json":
        return
    formatter = JsonFormatter()
    formatter.converter = time.gmtime  # the Z in each time means UTC
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
