"""Scrub credentials from URLs before they reach a log line or an error message.

The same scrubbing as the agent's (vigil_common/redact.py): `redact_url` here takes free text
and replaces `user:password@` in every URL inside it with `***@`. The controller's log handlers
carry the shared `RedactingFilter` (controller/__main__.py).
"""

from __future__ import annotations

from vigil_common.redact import redact_text as redact_url

__all__ = ["redact_url"]
