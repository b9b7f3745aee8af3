"""Stopping a long-running process cleanly on SIGTERM or SIGINT.

systemd stops a service with SIGTERM, an operator with Ctrl-C; either sets an event the
process's main loop waits on, so it closes its buffer, streams and broker sessions instead of
dying mid-write. Every command that runs until stopped (the agent and its parts, the
controller) takes its event from here.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType


def stop_on_signals(log: logging.Logger | None = None) -> threading.Event:
    """An event set by SIGTERM or SIGINT (logged on `log` when given). Call from the main
    thread, which should wait on the event with a timeout: a handler runs only when the main
    thread next executes bytecode."""
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        if log is not None:
            log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return stop
