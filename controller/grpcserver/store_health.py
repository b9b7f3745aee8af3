"""`StoreHealth`: the controller announces whether its ingest can commit (issue 19).

When the object store goes down, uploads fail with UNAVAILABLE and each agent backs off; when
it returns, agents should not wait out that backoff. This component probes the store every
`interval_s` (the same probe as /readyz: a HEAD of a key that is never written) and publishes
the result as the standard gRPC health status of service `vigil.v1.Ingest`: SERVING while
the store answers, NOT_SERVING while it does not. Agents keep a `Health/Watch` stream open
(edge_agent/leases/ready.py) and resume their uploads the moment it turns SERVING; a
restarted controller announces it from its first probe, before the agents' streams return.

A probe slower than `interval_s` delays the next one (one probe at a time, never a pile).
While the store answers the uploads themselves (`recent`, storage/answers.py: a request
succeeded within the interval and none failed since), that is the evidence and the probe is
skipped: each costs ~1.2 ms of CPU (a boto3 HEAD), ~0.2 ms per MB ingested at 15 MB/s.
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
        self,
        health: Health,
        probe: Callable[[], str | None],
        interval_s: float = 0.5,
        recent: Callable[[float], bool] | None = None,
    ) -> None:
        """`probe`: None when the store answers, else why not (or it raises). `recent(s)`:
        whether the store answered other requests within the last `s` seconds, none failing
        since (None: always probe)."""
        self._health = health
        self._probe = probe
        self._recent = recent
        self._interval_s = interval_s
        self.probes = 0  # probes run (the skipped ones are not counted)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.serving: bool | None = None  # the last announced status (None: not yet)

    def check(self) -> bool:
        """Probe once and announce a change; returns whether the store answered."""
        self.probes += 1
        try:
            problem = self._probe()
        except Exception as exc:  # any failure of the store is "not ready", never a crash
            problem = str(exc) or type(exc).__name__
        self._announce(problem)
        return problem is None

    def tick(self) -> bool:
        """One turn of the loop: the store's recent answers if any, else a probe."""
        if self._recent is not None and self._recent(self._interval_s):
            self._announce(None)
            return True
        return self.check()

    def _announce(self, problem: str | None) -> None:
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

    def start(self) -> None:
        self._stop.clear()
        self.check()
        self._thread = threading.Thread(target=self._loop, name="store-health", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.tick()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
