"""Open calls of revoked certificates are cut, not only new ones refused.

The guard (guard.py) registers every async call made with a client certificate here while it
runs: a lease stream, a live feed, an upload. When the revocation set changes, `cut` marks
the calls whose certificate it now refuses and cancels their task on the server's event loop;
the guard's wrapper turns that cancellation into UNAUTHENTICATED "revoked" (the same answer a
new call gets) and the servicer's own `finally` blocks release what the call held. A call
that is between two messages (gRPC is sending the last reply, outside the servicer) is not
cancelled there but ends as soon as it asks the servicer for the next one.

So a retired device's live streams end within one revocation refresh on every replica
(`enrollment.revocation_refresh_s`), and its reconnect is refused by the guard.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from controller.enrollment.rules import Revocations

log = logging.getLogger("vigil.enrollment")

Facts = tuple[str, str, int]  # (serial hex, certificate CN, issued at, µs)


@dataclass(eq=False)
class LiveCall:
    facts: Facts
    task: asyncio.Task[object] | None
    inside: bool = False  # the task is suspended in the servicer: a cancel lands there
    revoked: bool = False


class LiveCalls:
    """The open calls of one server (one event loop), by certificate."""

    def __init__(self) -> None:
        self._calls: set[LiveCall] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._calls)

    def of(self, device_id: str) -> int:
        """How many calls of `device_id` (the certificate's CN) are open."""
        return sum(1 for c in list(self._calls) if c.facts[1] == device_id)

    def open(self, facts: Facts) -> LiveCall:
        """On the loop, from the call's own task."""
        self._loop = asyncio.get_running_loop()
        call = LiveCall(facts, asyncio.current_task())
        self._calls.add(call)
        return call

    def close(self, call: LiveCall) -> None:
        self._calls.discard(call)

    def cut(self, current: Revocations) -> None:
        """Any thread: end every open call `current` refuses (on the loop, soon)."""
        loop = self._loop
        if loop is None or not self._calls:
            return
        try:
            loop.call_soon_threadsafe(self._cut, current)
        except RuntimeError:
            pass  # the loop is closed: the server stopped, nothing is open

    def _cut(self, current: Revocations) -> int:
        cut = 0
        for call in list(self._calls):
            if call.revoked or not current.refuses(*call.facts):
                continue
            call.revoked = True
            if call.inside and call.task is not None:
                call.task.cancel()
            cut += 1
        if cut:
            log.warning("cut %d open call(s) made with a revoked certificate", cut)
        return cut
