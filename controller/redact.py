"""Scrub credentials from URLs before they reach a log line or an error message.

The controller keeps its own copy of this tiny helper: `controller` and `edge_agent` deploy
separately and share only `protos` (see tests/unit/test_architecture.py).
"""

from __future__ import annotations

import re

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def redact_url(text: str) -> str:
    """Replace `user:password@` in every URL inside `text` with `***@`."""
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
