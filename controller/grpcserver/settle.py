"""Give a call's place back when its worker thread is done, and retrieve what it raised.

Why: a servicer awaits `asyncio.shield(work)` so that a cancelled call (the client left, the
server stopping) does not abandon a thread mid-commit. When the call is cancelled, nobody
awaits `work` any more; if the thread then raises (an upload cut at shutdown), asyncio logs
"Future exception was never retrieved" with a traceback for an outcome that was handled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


def release_when_done(release: Callable[[], None]) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback: `release()`, then mark any exception as retrieved."""

    def done(future: asyncio.Future[Any]) -> None:
        release()
        if not future.cancelled():
            future.exception()  # retrieved: the awaiting call handles it, or has gone

    return done
