"""The live hub's plain data: a feed's states, options, per-camera record and status, and
the link gate it asks (controller/live/hub.py holds them under its lock)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from controller.live.viewer import Viewer

CommandSink = Callable[[str, bool], None]  # (camera_id, start) -> the agent's stream, any thread
Upstream = Callable[[str, str, bool], None]  # (device, camera, start) -> the relay, any thread
Load = tuple[str, str, int]  # (device_id, camera_id, bit/s) of a live feed


class LinkGate(Protocol):
    """The links under the feeds (the scheduler's, wired by the assembly): whether one more
    feed fits, and what the running ones take (planned as LIVE, ahead of backfill)."""

    def admit(self, new: Load, running: list[Load], limit: int) -> str | None: ...

    def feeding(self, device_id: str, bps: int) -> None: ...


class FeedState(StrEnum):
    CONNECTING = "connecting"  # asked the agent, no video yet
    LIVE = "live"
    CAMERA_OFFLINE = "camera_offline"  # the agent says the camera delivers nothing
    AGENT_UNREACHABLE = "agent_unreachable"  # the camera's agent has no live stream open
    LINK_BUSY = "link_busy"  # a link on the way cannot carry another live stream now


@dataclass(frozen=True, slots=True)
class LiveOptions:
    linger_s: float = 5.0  # a feed outlives its last viewer this long
    viewer_chunks: int = 600  # ~20 s of video at 30 chunks/s before a viewer is dropped
    gop_bytes: int = 8 * 1024 * 1024  # the cached GOP of a feed (a longer GOP is not cached)
    # A live feed with no chunk for this long reads agent_unreachable (a silently cut link
    # takes gRPC keepalive ~80 s to notice; the viewer should not see "live" meanwhile).
    silent_s: float = 5.0
    max_streams_per_link: int = 4  # live feeds one link carries at most (0: no limit)
    assumed_bps: int = 2_000_000  # a camera's rate until its feed has been measured
    busy_retry_s: float = 5.0  # a "link busy" feed asks the links again this often
    rate_window_s: float = 2.0  # a feed's rate is measured over this long


@dataclass(eq=False)
class Feed:
    camera_id: str
    device_id: str
    viewers: set[Viewer] = field(default_factory=set)
    gop: list[bytes] = field(default_factory=list)
    gop_size: int = 0
    state: FeedState = FeedState.CONNECTING
    detail: str = ""
    asked: bool = False  # a start went to the agent's current stream
    idle_since: float | None = None
    frame_us: int = 0  # the agent's wall time of the newest frame
    since_us: int = 0  # when the state last changed (controller time)
    codec: str = ""  # the video codec (FFmpeg's name), from the last keyframe chunk
    chunk_at: float = 0.0  # monotonic time of the newest chunk (this controller's clock)
    bps: int = 0  # the measured rate (0: not yet)
    window: tuple[float, int] = (0.0, 0)  # (start, bytes) of the rate window
    busy_at: float = 0.0  # when the links last said "busy"
    relayed: bool = False  # asked of the upstream (another replica holds the feed)
    pinned: bool = False  # another replica watches it through us: never relayed on


@dataclass(frozen=True, slots=True)
class Status:
    state: FeedState
    frame_us: int
    since_us: int
    detail: str
    viewers: int
    codec: str = ""
