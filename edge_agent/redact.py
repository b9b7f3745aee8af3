"""Scrub credentials from anything that may reach a log line, an error or an MQTT message.

The implementation is shared with the controller (vigil_common/redact.py); the agent's modules
keep importing these names from here.
"""

from __future__ import annotations

from vigil_common.redact import RedactingFilter, redact_text, redact_url, setup_logging

__all__ = ["RedactingFilter", "redact_text", "redact_url", "setup_logging"]
