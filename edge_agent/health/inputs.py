"""What the health reporter reads and calls, as small Protocols and callables.

The lead wires the real SegmentBuffer (it satisfies BufferView and HoldStore) and the capture
manager's `statuses`; tests pass plain objects. None means "not available on this agent":
the matching command is refused with a clear error instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from edge_agent.clock import SkewEstimate
from edge_agent.config import AgentConfig
from edge_agent.health import commands as cm
from edge_agent.health import payloads as pl
from edge_agent.model import BufferStats, CameraStatus, EvictionRecord, Hold
from edge_agent.uplink.failover import RouteStatus

__all__ = ["BufferView", "HoldStore", "ReporterInputs", "psutil_probe"]


class BufferView(Protocol):
    """What health reporting reads from the segment buffer (SegmentBuffer satisfies it)."""

    def stats(self) -> BufferStats: ...
    def evictions(self, only_unreported: bool = True) -> list[EvictionRecord]: ...
    def mark_evictions_reported(self, record_ids: Sequence[int]) -> None: ...


class HoldStore(Protocol):
    def hold(self, camera_id: str, start_us: int, end_us: int, case_id: str) -> Hold: ...
    def release(self, hold_id: str) -> bool: ...
    def holds(self) -> list[Hold]: ...


@dataclass(frozen=True, slots=True)
class ReporterInputs:
    """Everything the reporter reads or calls; None means "not available on this agent"."""

    statuses: Callable[[], Sequence[CameraStatus]]
    buffer: BufferView | None = None
    holds: HoldStore | None = None
    on_reconfigure: Callable[[AgentConfig], None] | None = None
    on_upload_range: Callable[[cm.UploadRangeRequest], str] | None = None
    upload_rate_bps: Callable[[], int] | None = None
    system: Callable[[], pl.SystemFigures] | None = None
    # The agent's clock against the controller's (ClockOffset.estimate); None: not measured.
    clock_skew: Callable[[], SkewEstimate | None] | None = None
    # Where the uplink is connected (control and upload replica, failovers); None: no uplink.
    uplink_routes: Callable[[], RouteStatus] | None = None


def psutil_probe(data_dir: str) -> Callable[[], pl.SystemFigures]:
    """CPU, memory and the buffer disk's free space, via psutil."""
    path = data_dir if Path(data_dir).exists() else "/"

    def probe() -> pl.SystemFigures:
        disk = psutil.disk_usage(path)
        return pl.SystemFigures(
            cpu_pct=psutil.cpu_percent(interval=None),
            mem_pct=psutil.virtual_memory().percent,
            disk_free_bytes=disk.free,
            disk_total_bytes=disk.total,
        )

    return probe
