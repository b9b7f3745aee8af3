"""The writer's plain-packet path decides and writes exactly what its full path does.

Real PyAV muxing into real files: the same generated packet streams (wobble, lost frames,
jumps both ways, re-bases, zero durations, live arrival jitter and bursts) go through a writer
with the plain path and one without it; the committed segments (start, duration, flags, and
the SHA-256 of their bytes), the recorded gaps and the writer's counters must be identical.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from av.container import InputContainer
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.capture import SegmentWriter
from edge_agent.model import Gap, SegmentFlag, SegmentInfo, SegmentState
from edge_agent.segmenter import US, CutPolicy

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
TICK = 3600  # one 25 fps frame in 90 kHz ticks
GOP = 10


@dataclass(frozen=True)
class Source:
    stream: VideoStream
    packets: list[tuple[bytes, int, bool]]  # payload, pts - dts, keyframe


@dataclass
class MemorySink:
    """A buffer that keeps what it is given: each segment's facts and its bytes' hash."""

    root: Path
    committed: list[tuple[int, int, SegmentFlag, str]] = field(default_factory=list)
    recorded: list[Gap] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    made: int = 0

    def temp_path(self, camera_id: str, container: str = "ts") -> Path:
        self.made += 1
        return self.root / f"{camera_id}-{self.made}.{container}"

    def commit(
        self,
        camera_id: str,
        temp_path: Path,
        start_us: int,
        duration_us: int,
        flags: SegmentFlag = SegmentFlag.NONE,
        container: str = "ts",
        *,
        digest: tuple[int, str] | None = None,
    ) -> SegmentInfo:
        data = temp_path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        assert digest == (len(data), sha)  # hashed on the way matches what is on disk
        self.committed.append((start_us, duration_us, flags, sha))
        temp_path.unlink()
        return SegmentInfo(
            f"s{len(self.committed)}", camera_id, start_us, duration_us, len(data), sha, "",
            container, flags, SegmentState.UNSENT, temp_path.name,
        )  # fmt: skip

    def discard(self, temp_path: Path) -> None:
        temp_path.unlink(missing_ok=True)

    def record_gap(self, gap: Gap) -> None:
        self.recorded.append(gap)

    def segments(self, *args: Any, **kwargs: Any) -> list[SegmentInfo]:
        raise NotImplementedError  # the writer never reads the buffer back

    def gaps(self, *args: Any, **kwargs: Any) -> list[Gap]:
        raise NotImplementedError


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """A small H.264 stream (keyframe every 10 frames, B-frames) in MPEG-TS, demuxed once."""
    path = tmp_path_factory.mktemp("fastpath") / "src.ts"
    out = av.open(str(path), "w", format="mpegts")
    v = out.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
    v.options = {"preset": "ultrafast", "bf": "2", "g": str(GOP), "keyint_min": str(GOP)}
    v.options |= {"sc_threshold": "0"}
    for i in range(6 * GOP):
        frame = VideoFrame(64, 64, "yuv420p")
        for k, plane in enumerate(frame.planes):
            plane.update(bytes([(i * 11 + k * 60) % 256]) * plane.buffer_size)
        frame.pts, frame.time_base = i, Fraction(1, 25)
        for packet in v.encode(frame):
            out.mux(packet)
    for packet in v.encode(None):
        out.mux(packet)
    out.close()
    container: InputContainer = av.open(str(path))
    packets = [
        (bytes(p), (p.pts or 0) - (p.dts or 0), bool(p.is_keyframe))
        for p in container.demux(container.streams.video[0])
        if p.size and p.pts is not None and p.dts is not None
    ]
    yield Source(container.streams.video[0], packets)
    container.close()


# dts step in ticks, duration in frames (0: none), arrival jitter µs, lost on the way
Frame = tuple[int, int, int, bool]


def run_writer(
    src: Source,
    tmp: Path,
    frames: list[Frame],
    live: bool,
    target_s: int,
    plain: bool,
    gop_keys: int = 1,
) -> tuple[MemorySink, SegmentWriter, int]:
    """Feed the generated stream (only every `gop_keys`-th keyframe of the source stays a
    keyframe); returns the sink, the writer and how many packets took the full path."""
    tmp.mkdir()
    sink = MemorySink(tmp)
    policy = CutPolicy(target_us=target_s * US, max_us=3 * target_s * US, forward_jump_us=US)
    writer = SegmentWriter(
        "c1", sink, policy, on_event=lambda *e: sink.events.append(e), plain_path=plain
    )
    full = 0
    feed_full = writer._feed_full

    def counted(packet: Packet[Any], now_us: int | None) -> bool:
        nonlocal full
        full += 1
        return feed_full(packet, now_us)

    writer._feed_full = counted  # type: ignore[method-assign]
    writer.begin(src.stream, T0, live=live, earliest_us=T0 - 50_000 if live else None)
    dts, now = 0, T0
    for n, (step_ticks, dur_frames, jitter, lost) in enumerate(frames):
        payload, reorder, key = src.packets[n % len(src.packets)]
        key = key and (n // GOP) % gop_keys == 0
        dts += step_ticks
        now += abs(step_ticks) * 100 // 9 if abs(step_ticks) < 90_000 else 40_000
        if lost:
            continue  # never received: its time passes, its timestamps are skipped
        packet: Packet[Any] = Packet(payload)
        packet.dts, packet.pts = dts, dts + reorder
        packet.duration = dur_frames * TICK
        packet.time_base = Fraction(1, 90_000)
        packet.is_keyframe = key
        writer.feed(packet, now + jitter if live else None)
    writer.end(truncated=True)
    return sink, writer, full


_STEPS = st.sampled_from(
    [TICK] * 60
    + [TICK - 1, TICK + 2, TICK - 9, TICK + 30] * 5
    + [2 * TICK, 3 * TICK, -TICK, 3 * 90_000]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    frames=st.lists(
        st.tuples(
            _STEPS,
            st.sampled_from([1] * 20 + [0, 2]),
            st.sampled_from([0] * 20 + [1_000, 30_000, 400_000, -2_000_000]),
            st.sampled_from([False] * 60 + [True]),
        ),
        min_size=50,
        max_size=400,
    ),
    live=st.booleans(),
    target_s=st.integers(min_value=1, max_value=2),
    gop_keys=st.sampled_from([1, 1, 3, 10]),  # keyframe every 0.4, 1.2 or 4 s
)
def test_plain_path_writes_exactly_what_the_full_path_writes(
    source: Source,
    tmp_path: Path,
    frames: list[Frame],
    live: bool,
    target_s: int,
    gop_keys: int,
) -> None:
    case = tmp_path / f"case-{len(list(tmp_path.iterdir()))}"
    case.mkdir()
    args = (frames, live, target_s)
    fast, fast_writer, _ = run_writer(source, case / "plain", *args, True, gop_keys)
    full, full_writer, _ = run_writer(source, case / "full", *args, False, gop_keys)
    assert all("cannot" not in gap.reason for gap in full.recorded)  # every commit stored
    assert fast.committed == full.committed
    assert fast.recorded == full.recorded
    assert fast.events == full.events
    assert fast_writer.untimed_dropped == full_writer.untimed_dropped
    assert fast_writer.covered_until_us == full_writer.covered_until_us
    assert fast_writer.gop_s == full_writer.gop_s


def test_a_steady_stream_takes_the_plain_path(source: Source, tmp_path: Path) -> None:
    """Only keyframes take the full path (and a frame that lowers the live anchor)."""
    frames: list[Frame] = [(TICK, 1, 0, False)] * 1000  # 40 s
    sink, _, full = run_writer(source, tmp_path / "w", frames, True, 2, True)
    assert len(sink.committed) >= 15 and sink.recorded == []
    assert full <= 1000 // GOP + 2
    _, _, all_full = run_writer(source, tmp_path / "f", frames, True, 2, False)
    assert all_full == 1000
