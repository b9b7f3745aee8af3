"""JSON log lines (one object per line) for log shippers, as an option to the text format.

The formatter only formats: scrubbing stays with `RedactingFilter` on the same handler, which
runs before formatting, so the message and the traceback text a JSON line carries are the
already-redacted ones. Times are UTC (ISO 8601 with a `Z`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ["exc"], "thread"}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter of `log_format` ("text" or "json"; ValueError otherwise)."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"unknown log format {log_format!r} (text or json)")


def use_format(logger: logging.Logger, log_format: str) -> None:
    """Give every handler of `logger` the formatter of `log_format` (after the configuration
    was read, when the handlers already exist)."""
    formatter = formatter_for(log_format)
    for handler in logger.handlers:
        handler.setFormatter(formatter)
