"""Build the leased uplink of an agent: uploads (Ingest) on the upload route, inventories and
the lease stream (AgentControl) on the control route, over one pool of TLS channels (one per
controller replica, shared when both routes point at the same one); the token bucket is
shared, so the leased rate paces every upload wherever it goes.

    uploader, leases = leased_uplink(config.device_id, config.uplink, agent.buffer, clock,
                                     agent.publish, cameras=[c.id for c in config.cameras])
    agent.add_component(uploader)
    agent.add_component(leases)       # stopped first (components stop newest first)
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from edge_agent.clock import Clock, ClockOffset
from edge_agent.config import UplinkConfig
from edge_agent.leases.client import LeaseClient, LeaseClientOptions
from edge_agent.leases.control import ControlChannel
from edge_agent.leases.source import LeasedJobSource, LeasedUploader
from edge_agent.model import AgentEvent
from edge_agent.store import SegmentBuffer
from edge_agent.uplink.ratelimit import TokenBucket
from edge_agent.uplink.routing import HOME_AFTER_S, RouteKeeper, failover_client, open_pool
from edge_agent.uplink.uploader import RetryPolicy


def leased_uplink(
    device_id: str,
    cfg: UplinkConfig,
    buffer: SegmentBuffer,
    clock: Clock,
    on_event: Callable[[AgentEvent], None],
    cameras: Collection[str] | None = None,
    archive_cameras: Collection[str] = (),
    options: LeaseClientOptions | None = None,
    policy: RetryPolicy | None = None,
    server_name: str | None = None,
    clock_offset: ClockOffset | None = None,
    home_after_s: float = HOME_AFTER_S,
) -> tuple[LeasedUploader, LeaseClient]:
    """(uploader, lease client), not started. Raises UplinkError for unreadable TLS files.

    `cameras`: the cameras this device has (a requested camera it lacks is reported as
    such); None accepts any. `cfg.rate_bps` only paces until the first lease sets the rate.
    `clock_offset` collects the controller's time from inventory answers. `home_after_s`: how
    long uploads stay on another replica before trying the first (home) one again.
    """
    pool = open_pool(cfg, server_name)
    bucket = TokenBucket(cfg.rate_bps, cfg.chunk_bytes, clock)
    client = failover_client(cfg.addresses, pool, cfg.chunk_bytes, bucket, clock, home_after_s)
    control = ControlChannel(RouteKeeper(cfg.addresses, clock, "control"), pool.get)
    source = LeasedJobSource(buffer, bucket, clock)
    uploader = LeasedUploader(
        buffer, client, clock, on_event, source, policy=policy, concurrency=cfg.concurrency
    )
    leases = LeaseClient(
        device_id,
        control,
        buffer,
        source,
        clock,
        options,
        archive_cameras=archive_cameras,
        known_cameras=cameras,
        wake_uploader=uploader.wake,
        clock_offset=clock_offset,
        resume_uploads=uploader.resume,
    )
    return uploader, leases
