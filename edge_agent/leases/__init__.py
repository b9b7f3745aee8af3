"""The agent's side of upload leases (vigil.v1.AgentControl).

Pure: `lease` (checked lease messages, which leased segment to send next), `inventory`
(backlog per camera and class, hold statuses, which holds to pin or release), `ranges`.
Shell: `source` (`LeasedJobSource` and `LeasedUploader`: the uploader sends only leased
segments, in lease order, at the leased rate), `client` (`LeaseClient`: inventory reports,
the lease stream with backoff, lease reports). `python -m edge_agent.leases` runs the
leased uplink on a buffer directory.

Wiring (agent.toml `uplink.mode = "leased"`): `wiring.leased_uplink` builds the uploader
and the lease client on one channel; add both to the Agent as components.
"""

from edge_agent.leases.client import LeaseClient, LeaseClientOptions
from edge_agent.leases.lease import AgentLease, LeaseRejected, LeaseUpdate, WantedHold, parse_lease
from edge_agent.leases.source import FinishedLease, LeasedJobSource, LeasedUploader
from edge_agent.leases.wiring import leased_uplink

__all__ = [
    "AgentLease",
    "FinishedLease",
    "LeaseClient",
    "LeaseClientOptions",
    "LeaseRejected",
    "LeaseUpdate",
    "LeasedJobSource",
    "LeasedUploader",
    "WantedHold",
    "leased_uplink",
    "parse_lease",
]
