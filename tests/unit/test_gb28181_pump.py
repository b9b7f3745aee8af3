"""The live cascade pump: queued chunks out as PS/RTP on one timer; ends said once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from controller.gb28181.media import Sink, StreamStats
from controller.gb28181.ps import H264, AccessUnit
from controller.gb28181.pump import LiveOut, LivePump, PumpViewer
from controller.gb28181.rtp import parse_rtp
from tests.unit.test_gb28181_media import IDR, P_FRAME, make_ts


class FakeSink(Sink):
    def __init__(self, fail_after: int = 10**9) -> None:
        self.packets: list[bytes] = []
        self.fail_after = fail_after
        self.closed = False

    def send_now(self, packets: Sequence[bytes]) -> None:
        if len(self.packets) >= self.fail_after:
            raise ConnectionError("receiver gone")
        self.packets += packets

    def close(self) -> None:
        self.closed = True


def test_queued_chunks_go_out_in_one_tick_and_a_closed_viewer_ends_the_stream() -> None:
    async def main() -> tuple[FakeSink, StreamStats, int, int]:
        loop = asyncio.get_running_loop()
        viewer = PumpViewer("cam", loop, 100)
        sink, stats = FakeSink(), StreamStats()
        pump = LivePump(tick_s=0.01)
        out = LiveOut(viewer, sink, 1234, 96, stats)
        task = loop.create_task(pump.run(out))
        ts = make_ts(H264, [(9000, IDR), (12600, P_FRAME), (16200, P_FRAME)])
        cut = len(ts) // 188 - 2  # the last frame is two packets: its own chunk
        viewer.offer(ts[: cut * 188])
        viewer.offer(ts[cut * 188 :])
        await asyncio.sleep(0.05)
        frames_before_close = stats.frames
        viewer.close()
        await asyncio.wait_for(task, 1.0)
        return sink, stats, frames_before_close, pump.ticks

    sink, stats, frames, ticks = asyncio.run(main())
    assert frames == 3 and stats.ended == "source ended" and sink.closed
    assert {parse_rtp(p)[3] for p in sink.packets} == {1234}
    assert sink.packets and parse_rtp(sink.packets[0])[4].startswith(b"\x00\x00\x01\xba")
    assert 1 <= ticks <= 20  # a timer, not a wake-up per chunk


def test_a_failing_sink_ends_the_stream_and_leaves_the_viewer() -> None:
    async def main() -> tuple[StreamStats, PumpViewer]:
        loop = asyncio.get_running_loop()
        viewer = PumpViewer("cam", loop, 100)
        stats = StreamStats()
        out = LiveOut(viewer, FakeSink(fail_after=0), 1, 96, stats)
        task = loop.create_task(LivePump(tick_s=0.01).run(out))
        viewer.offer(make_ts(H264, [(9000, IDR)]))
        await asyncio.wait_for(task, 1.0)
        return stats, viewer

    stats, viewer = asyncio.run(main())
    assert stats.ended == "sink failed: receiver gone" and viewer.closed


def test_a_stream_that_fails_to_pack_ends_alone_and_the_others_go_on() -> None:
    async def main() -> tuple[StreamStats, StreamStats, FakeSink]:
        loop = asyncio.get_running_loop()
        pump = LivePump(tick_s=0.01)
        bad_viewer, good_viewer = PumpViewer("a", loop, 100), PumpViewer("b", loop, 100)
        bad = LiveOut(bad_viewer, FakeSink(), 1, 96, StreamStats())
        good_sink = FakeSink()
        good = LiveOut(good_viewer, good_sink, 2, 96, StreamStats())

        def broken(_data: bytes, _whole: bool = False) -> list[AccessUnit]:
            raise IndexError("a bug")

        bad.demux.feed = broken  # type: ignore[method-assign]
        bad_task, good_task = loop.create_task(pump.run(bad)), loop.create_task(pump.run(good))
        for viewer in (bad_viewer, good_viewer):
            viewer.offer(make_ts(H264, [(9000, IDR)]))
        await asyncio.wait_for(bad_task, 1.0)
        good_viewer.offer(make_ts(H264, [(12600, IDR)]))
        await asyncio.sleep(0.05)
        good_viewer.close()
        await asyncio.wait_for(good_task, 1.0)
        return bad.stats, good.stats, good_sink

    bad, good, sink = asyncio.run(main())
    assert bad.ended == "packing failed: IndexError('a bug')"
    assert good.ended == "source ended" and good.frames == 2 and sink.packets
