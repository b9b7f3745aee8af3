"""Live cascade streams delivered by one timer on the SIP loop, not one coroutine each.

A browser viewer's queue pokes its loop (`call_soon_threadsafe`) whenever a chunk arrives, and
its coroutine resumes per frame: for a cascade that is a loop wake-up, a task step and an
async-generator step per frame and stream, which cost several times the remux itself
(docs/benchmarks.md, "GB/T 28181 cascade"). Here a live stream's queue (`PumpViewer`, a hub
`Viewer` that never pokes) is drained every `TICK_S` by one callback for all streams: each
queued chunk is demuxed, packed to PS, cut to RTP and sent without awaiting (UDP: sendto on a
non-blocking socket, a full buffer drops the packet as the network would; TCP: the stream's
transport buffer, a stream more than `MAX_TCP_BUFFER` behind is ended). A stream ends when
the hub closes or drops its viewer, or its sink fails; its task (awaiting `done`) then ends.
"""

from __future__ import annotations

import asyncio
import logging

from controller.gb28181.media import Sink, StreamStats
from controller.gb28181.ps import PsPacker
from controller.gb28181.rtp import RtpPacketizer
from controller.gb28181.tsdemux import TsDemuxer
from controller.live.viewer import Viewer

log = logging.getLogger("vigil.gb28181")
TICK_S = 0.1  # frames go out in batches: added latency <= 100 ms, <= 10 wake-ups a second


class PumpViewer(Viewer):
    """A hub viewer drained by the pump's timer: `offer` (hub thread) only queues."""

    def _poke(self) -> None:
        """No cross-thread wake-up: the pump looks at every queue each tick."""

    def take(self) -> list[bytes] | None:
        """Every queued chunk (maybe none), or None once closed or dropped."""
        with self._lock:
            if self.closed:
                return None
            if not self._chunks:
                return []
            chunks = list(self._chunks)
            self._chunks.clear()
            return chunks


class LiveOut:
    """One live stream: its queue, pipeline, sink and end."""

    def __init__(
        self, viewer: PumpViewer, sink: Sink, ssrc: int, payload_type: int, stats: StreamStats
    ) -> None:
        self.viewer = viewer
        self.sink = sink
        self.stats = stats
        self.demux = TsDemuxer()
        self.packer = PsPacker()
        self.rtp = RtpPacketizer(ssrc, payload_type)
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def packets(self) -> list[bytes]:
        """The RTP packets of every frame queued since the last tick (maybe none)."""
        chunks = self.viewer.take()
        if chunks is None:
            self.finish("dropped by the hub" if self.viewer.dropped else "source ended")
            return []
        if not chunks:
            return []
        try:  # a live chunk ends on a whole frame: flush once after all of them
            units = self.demux.feed(chunks[0] if len(chunks) == 1 else b"".join(chunks), True)
            packets: list[bytes] = []
            pack, cut = self.packer.pack, self.rtp.packets_of
            for au in units:
                ps = pack(au)
                if ps is not None:
                    packets += cut(ps, au.pts if au.pts is not None else (au.dts or 0))
                    self.stats.frames += 1
            return packets
        except Exception as exc:  # a bug here must end this stream, not stop the timer for all
            log.exception("cascade stream ssrc %d: packing failed", self.rtp.ssrc)
            self.finish(f"packing failed: {exc!r}")
            return []

    def send(self, packets: list[bytes], now: float) -> None:
        try:
            self.sink.send_now(packets)
        except (ConnectionError, OSError) as exc:
            self.finish(f"sink failed: {exc}")
            return
        if not self.stats.first_packet_at:
            self.stats.first_packet_at = now
        self.stats.packets, self.stats.octets = self.rtp.packets, self.rtp.octets

    def finish(self, why: str) -> None:
        if not self.done.done():
            self.stats.ended = why
            self.done.set_result(why)


class LivePump:
    """Every live cascade stream of one loop, drained by one timer while any exists."""

    def __init__(self, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s
        self.outs: set[LiveOut] = set()
        self.ticks = 0
        self._timer: asyncio.TimerHandle | None = None

    async def run(self, out: LiveOut) -> None:
        """Deliver `out` until it ends (or the calling task is cancelled: BYE)."""
        loop = asyncio.get_running_loop()
        try:
            await out.sink.connect()
            self.outs.add(out)
            if self._timer is None:
                self._timer = loop.call_later(self.tick_s, self._tick)
            why = await out.done
            if why.startswith("sink failed"):
                log.warning("cascade stream ssrc %d: %s", out.rtp.ssrc, why)
        except (ConnectionError, OSError, TimeoutError) as exc:
            out.stats.ended = f"sink failed: {exc}"
            log.warning("cascade stream ssrc %d: %s", out.rtp.ssrc, out.stats.ended)
        finally:
            self.outs.discard(out)
            out.viewer.close()
            out.sink.close()

    def _tick(self) -> None:
        """Every stream's packets first, then every stream's sends: the Python of the first
        phase and the kernel's network path of the second each stay in the CPU's caches
        across all streams, instead of evicting each other once per stream."""
        loop = asyncio.get_running_loop()
        self.ticks += 1
        now = loop.time()
        batches = [(out, out.packets()) for out in list(self.outs) if not out.done.done()]
        for out, packets in batches:
            if packets and not out.done.done():
                out.send(packets, now)
        self._timer = loop.call_later(self.tick_s, self._tick) if self.outs else None
