"""When the agent's ready watch tells the uploader to resume: only on a change to ready."""

from __future__ import annotations

from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

from edge_agent.leases.ready import became_ready

R = health_pb2.HealthCheckResponse


def test_only_a_change_to_ready_is_announced() -> None:
    assert became_ready(False, R.SERVING) == (True, True)  # came back (or first connect)
    assert became_ready(True, R.SERVING) == (True, False)  # no news
    assert became_ready(True, R.NOT_SERVING) == (False, False)  # store down: wait
    assert became_ready(False, R.NOT_SERVING) == (False, False)
    # A controller without the ingest status: ready whenever its stream is open.
    assert became_ready(False, R.SERVICE_UNKNOWN) == (True, True)
    assert became_ready(False, R.UNKNOWN) == (False, False)
