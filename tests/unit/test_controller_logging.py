"""The controller's log lines go through the agent's redacting filter (one implementation)."""

from __future__ import annotations

import subprocess
import sys

from controller.redact import redact_url
from edge_agent.redact import RedactingFilter as AgentFilter
from vigil_common.redact import RedactingFilter

PROBE = r"""
import logging
from controller.__main__ import configure_logging
configure_logging("INFO")
logging.getLogger("sqlalchemy.engine").warning("cannot connect to %s", "postgresql://vigil:s3cret@db/vigil")
try:
    raise RuntimeError("rtsp://admin:hunter2@10.0.0.5/stream failed")
except RuntimeError:
    logging.getLogger("vigil").exception("capture")
"""


def test_controller_log_lines_are_scrubbed() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert "postgresql://***@db/vigil" in result.stderr, result.stderr
    assert "rtsp://***@10.0.0.5/stream" in result.stderr, result.stderr
    assert "s3cret" not in result.stderr and "hunter2" not in result.stderr


def test_one_filter_and_the_same_scrubbing_for_both() -> None:
    assert AgentFilter is RedactingFilter
    assert redact_url("see postgresql://u:p@h/d") == "see postgresql://***@h/d"
