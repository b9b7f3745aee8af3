"""`HttpComponent`: the HTTP API served by uvicorn in a thread, with start()/stop() like every
other controller component, plus the periodic jobs the API needs (the aggregated segment-fetch
audit is flushed every minute and at shutdown).

The listening socket is bound in `start()`, in the caller's thread, so "port in use" is an
error of `start()` (and so of controller start-up), and port 0 works: `port` tells the port
actually bound. uvicorn's own signal handlers are not installed outside the main thread; the
controller owns SIGTERM and calls `stop()`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence

import uvicorn
from fastapi import FastAPI

from controller.runtime import PeriodicTask

log = logging.getLogger("vigil.api")

# Requests carry grant tokens (up to 64 KiB) in a header or the query string: let them reach
# the grant decoder, which refuses oversize tokens with a clear, audited reason.
MAX_HEADER_BYTES = 160 * 1024


class HttpComponent:
    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        *,
        periodic: Sequence[Callable[[], object]] = (),
        period_s: float = 60.0,
        start_timeout_s: float = 10.0,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.app = app
        self._tls = tls  # (certificate file, key file): serve HTTPS
        self.host = host
        self._requested_port = port
        self._periodic = list(periodic)
        self._start_timeout_s = start_timeout_s
        self._socket: socket.socket | None = None
        self._bound_port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        # The last run at stop: e.g. the last segment-fetch tallies into the audit log.
        self._ticker = PeriodicTask("http-periodic", period_s, self._run_periodic, run_at_stop=True)

    @property
    def port(self) -> int:
        return self._bound_port or self._requested_port

    @property
    def base_url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without, Nagle + delayed ACK add ~40 ms per response.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError as exc:
            sock.close()
            raise OSError(f"HTTP {self.host}:{self._requested_port}: {exc.strerror}") from exc
        self._socket = sock
        self._bound_port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,  # query strings carry grants and signatures: never log them
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=3,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            ssl_certfile=self._tls[0] if self._tls else None,
            ssl_keyfile=self._tls[1] if self._tls else None,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="http-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            self.stop()
            raise RuntimeError(f"HTTP server on {self.host}:{self.port} did not start")
        if self._periodic:
            self._ticker.start()
        log.info("HTTP API, playback and console on %s/", self.base_url)

    def _run_periodic(self) -> None:
        for job in self._periodic:
            try:
                job()
            except Exception:
                log.exception("periodic HTTP job %r failed; will retry", job)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._ticker.stop()  # joins the ticker if it ran, then runs the jobs a last time
        if self._socket is not None:
            self._socket.close()
