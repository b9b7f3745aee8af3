"""One WebSocket viewer's bounded queue of live chunks (controller/live/hub.py fans out to it).

`offer` runs on whatever thread delivered the chunk (the gRPC loop), `next` on the viewer's own
event loop (the HTTP server's); the viewer is woken with `call_soon_threadsafe` only when its
queue goes from empty to non-empty. A viewer that falls `max_chunks` behind is closed and
marked dropped: nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque


class Viewer:
    """One WebSocket viewer's queue; `offer` from any thread, `next` on its own loop."""

    def __init__(self, camera_id: str, loop: asyncio.AbstractEventLoop, max_chunks: int) -> None:
        self.camera_id = camera_id
        self._loop = loop
        self._max = max_chunks
        self._lock = threading.Lock()
        self._chunks: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._gone = asyncio.Event()
        self.dropped = False
        self.closed = False
        self.bytes_sent = 0

    def offer(self, chunk: bytes) -> bool:
        """Queue a chunk; False (and the viewer closed) when it is too far behind."""
        with self._lock:
            if self.closed:
                return False
            if len(self._chunks) >= self._max:
                self.dropped = self.closed = True
                self._chunks.clear()
                first = True
            else:
                first = not self._chunks
                self._chunks.append(chunk)
        if first:
            self._poke()
        return not self.dropped

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self._poke()

    def _poke(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wakeup)
        except RuntimeError:
            pass  # the viewer's loop is gone: nobody waits

    def _wakeup(self) -> None:
        self._wake.set()
        if self.closed:
            self._gone.set()

    async def gone(self) -> None:
        """Returns once the viewer is closed or dropped (even while a send is stuck)."""
        await self._gone.wait()

    async def next(self) -> list[bytes] | None:
        """Every queued chunk (at least one), or None once the viewer is closed or dropped."""
        while True:
            with self._lock:
                if self.closed:
                    return None
                if self._chunks:
                    chunks = list(self._chunks)
                    self._chunks.clear()
                    return chunks
                self._wake.clear()
            await self._wake.wait()

    def pending(self) -> int:
        with self._lock:
            return len(self._chunks)
