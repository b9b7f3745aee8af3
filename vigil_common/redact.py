"""Scrub credentials from anything that may reach a log line, an error or an MQTT message.

One implementation for the agent and the controller: both install `RedactingFilter` on their
root log handlers, so an RTSP password or a database URL's password never reaches a log line
of either, whichever logger (ours or a library's) wrote it.
"""

from __future__ import annotations

import logging
import re
import sys
from urllib.parse import urlsplit, urlunsplit

from vigil_common.jsonlog import formatter_for

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def redact_url(url: str) -> str:
    """Replace user:password in a URL with `***` (keeps the host so operators can debug)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_CREDENTIALS.sub(r"\g<scheme>***@", url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """Scrub every URL credential in free text (exception messages from FFmpeg, say)."""
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs URL credentials from every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = redact_text(message)
        if scrubbed != message:
            record.msg = scrubbed
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def redact_handlers(logger: logging.Logger) -> None:
    """Put the redacting filter on every handler of `logger` that lacks one (for a process
    whose handlers were set up by logging.basicConfig or by a test harness)."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def setup_logging(level: str | int, log_format: str = "text") -> None:
    """One stderr handler on the root logger with the redacting filter on the handler, so the
    records of every logger (ours and the libraries') are scrubbed. Every agent entry point
    calls this instead of logging.basicConfig. `log_format`: "text" or "json" (one JSON
    object per line, vigil_common/jsonlog.py)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(log_format))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
