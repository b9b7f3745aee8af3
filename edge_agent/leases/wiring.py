"""Build the leased uplink of an agent: one TLS channel to the controller carries both the
uploads (Ingest) and the lease stream (AgentControl); the token bucket is shared, so the
leased rate paces every upload.

    uploader, leases = leased_uplink(config.device_id, config.uplink, agent.buffer, clock,
                                     agent.publish, cameras=[c.id for c in config.cameras])
    agent.add_component(uploader)
    agent.add_component(leases)       # stopped first (components stop newest first)
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from edge_agent.clock import Clock, ClockOffset
from edge_agent.config import UplinkConfig
from edge_agent.leases.client import LeaseClient, LeaseClientOptions
from edge_agent.leases.source import LeasedJobSource, LeasedUploader
from edge_agent.model import AgentEvent
from edge_agent.store import SegmentBuffer
from edge_agent.uplink.client import IngestClient, connect, load_credentials
from edge_agent.uplink.ratelimit import TokenBucket
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
) -> tuple[LeasedUploader, LeaseClient]:
    """(uploader, lease client), not started. Raises UplinkError for unreadable TLS files.

    `cameras`: the cameras this device has (a requested camera it lacks is reported as
    such); None accepts any. `cfg.rate_bps` only paces until the first lease sets the rate.
    `clock_offset` collects the controller's time from inventory answers.
    """
    creds = load_credentials(Path(cfg.ca_cert), Path(cfg.client_cert), Path(cfg.client_key))
    channel = connect(cfg.controller, creds, cfg.chunk_bytes, server_name)
    bucket = TokenBucket(cfg.rate_bps, cfg.chunk_bytes, clock)
    client = IngestClient(channel, cfg.chunk_bytes, bucket, clock)
    source = LeasedJobSource(buffer, bucket, clock)
    uploader = LeasedUploader(
        buffer, client, clock, on_event, source, policy=policy, concurrency=cfg.concurrency
    )
    leases = LeaseClient(
        device_id,
        channel,
        buffer,
        source,
        clock,
        options,
        archive_cameras=archive_cameras,
        known_cameras=cameras,
        wake_uploader=uploader.wake,
        clock_offset=clock_offset,
    )
    return uploader, leases
