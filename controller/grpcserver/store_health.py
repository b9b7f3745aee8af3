"""`StoreHealth`: the controller announces whether its ingest can commit (issue 19).

When the object store goes down, uploads fail with UNAVAILABLE and each agent backs off; when
it returns, agents should not wait out that backoff. This component probes the store every
`interval_s` (the same probe as /readyz: a HEAD of a key that is never written) and publishes
the result as the standard gRPC health status of service `vigil.v1.Ingest`: SERVING while
the store answers, NOT_SERVING while it does not. Agents keep a `Health/Watch` stream open
(edge_agent/leases/ready.py) and resume their uploads the moment it turns SERVING; a
restarted controller announces it from its first probe, before the agents' streams return.

A probe slower than `interval_s` delays the next one (one probe at a time, never a pile).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from controller.grpcserver.observe import Health

log = logging.getLogger(__name__)

INGEST_SERVICE = "vigil.v1.Ingest"


class StoreHealth:
    """start()/stop(): a daemon thread turning store probes into the ingest health status."""

    def __init__(
        self, health: Health, probe: Callable[[], str | None], interval_s: float = 0.5
    ) -> None:
        """`probe`: None when the store answers, else why not (or it raises)."""
        self._health = health
        self._probe = probe
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.serving: bool | None = None  # the last announced status (None: not yet)

    def check(self) -> bool:
        """Probe once and announce a change; returns whether the store answered."""
        try:
            problem = self._probe()
        except Exception as exc:  # any failure of the store is "not ready", never a crash
            problem = str(exc) or type(exc).__name__
        ok = problem is None
        if ok != self.serving:
            if ok:
                log.info("object store answers: ingest ready (%s SERVING)", INGEST_SERVICE)
            else:
                log.warning(
                    "object store does not answer: %s (%s NOT_SERVING)", problem, INGEST_SERVICE
                )
            self._health.set_service(INGEST_SERVICE, ok)
            self.serving = ok
        return ok

    def start(self) -> None:
        self._stop.clear()
        self.check()
        self._thread = threading.Thread(target=self._loop, name="store-health", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
