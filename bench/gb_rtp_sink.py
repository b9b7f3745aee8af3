"""The upper platform's RTP receivers for bench.gb28181, in a process of their own.

In the benchmark's process they were one Python thread per stream calling `recv` per packet:
thousands of GIL hand-offs a second against the cascade thread they were measuring (every
`sendto` releases the GIL and wakes a receiver). A real upper platform is another machine;
here it is another process: one selector over N non-blocking sockets, counting bytes and
the first packet's time (CLOCK_MONOTONIC, shared by processes) per socket.
"""

from __future__ import annotations

import multiprocessing
import selectors
import socket
import time
from multiprocessing.connection import Connection


def _serve(n: int, conn: Connection) -> None:
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        socks.append(s)
    conn.send([s.getsockname()[1] for s in socks])
    first, counts = [0.0] * n, [0] * n
    while True:
        if conn.poll(0):
            if conn.recv() == "stop":
                return
            conn.send((first, counts))
        for key, _ in sel.select(0.05):
            i, s = key.data, socks[key.data]
            while True:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    break
                if not first[i]:
                    first[i] = time.monotonic()
                counts[i] += len(data)


class RtpSinks:
    """N UDP receivers in a forked process (start it before any thread exists)."""

    def __init__(self, n: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(n, child), daemon=True)
        self._proc.start()
        self.ports: list[int] = self._conn.recv()

    def stats(self) -> tuple[list[float], list[int]]:
        """(first packet's monotonic time or 0, bytes received) per receiver."""
        self._conn.send("stats")
        first, counts = self._conn.recv()
        return first, counts

    def stop(self) -> None:
        self._conn.send("stop")
        self._proc.join(5)
