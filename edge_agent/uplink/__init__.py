"""The agent's uplink: resumable, rate-capped, retried segment uploads to the controller.

`client.IngestClient` speaks `vigil.v1.Ingest` over mutual TLS; `uploader.Uploader` drains the
buffer through it (oldest first, marks uploaded only on the controller's acknowledgement);
`ratelimit.TokenBucket` caps the rate; `routing` fails over between controller replicas
(decisions in `failover`); `plan` holds the pure decisions (resume, header,
deadline); `errors` is the one exception tree callers see.
"""

from edge_agent.uplink.client import IngestClient, connect, load_credentials
from edge_agent.uplink.errors import (
    ConflictError,
    PermanentError,
    RetryableError,
    SegmentGoneError,
    UplinkError,
    UploadCancelled,
)
from edge_agent.uplink.failover import RouteStatus
from edge_agent.uplink.plan import Outcome, ServerOffset, UploadResult
from edge_agent.uplink.ratelimit import TokenBucket
from edge_agent.uplink.routing import (
    ChannelPool,
    FailoverIngestClient,
    RouteKeeper,
    open_client,
)
from edge_agent.uplink.uploader import Job, RetryPolicy, UplinkStats, Uploader

__all__ = [
    "ChannelPool",
    "FailoverIngestClient",
    "RouteKeeper",
    "RouteStatus",
    "ConflictError",
    "IngestClient",
    "Job",
    "Outcome",
    "PermanentError",
    "RetryPolicy",
    "RetryableError",
    "SegmentGoneError",
    "ServerOffset",
    "TokenBucket",
    "UplinkError",
    "UplinkStats",
    "UploadCancelled",
    "UploadResult",
    "Uploader",
    "connect",
    "load_credentials",
    "open_client",
]
