"""bench.gb28181's baselines: PyAV (FFmpeg's `mpeg` muxer) remuxing the cascade's TS bytes to PS.

Three ways, all over the same bytes (the emulated cameras' live TS), none with RTP or sockets:
- `bare_round_pct`, the issue's figure since session 4: the 4 s clip remuxed once per stream,
  three times over, each time in containers opened for it. Measured 2026-12-04 (session 7):
  the open and close are 0.6-0.7 ms of its 1.4-1.7 ms per clip, so about half of the figure
  is container set-up a live remux does once per session.
- `continuous_round_pct`: one container per stream over a continuous stream (the clip
  repeated with its timestamps carried on), opened before the clock starts: the remux alone,
  in a warm batch loop.
- `paced_round_pct`: the same continuous remux delivered live, as the cascade must: one thread
  for all streams wakes every `tick_s` (the pump's tick) and remuxes the frames due by then.
  It pays the wake-ups and cold caches of real-time delivery; it does not packetize or send.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import av

BARE_REPEAT = 3  # the clip remuxed this many times per stream and round


def bare_remux_cpu_s(ts: bytes) -> float:
    """CPU seconds PyAV takes to remux these TS bytes to PS (FFmpeg's mpeg muxer)."""
    start = time.thread_time()
    with av.open(io.BytesIO(ts), "r", format="mpegts") as src:
        stream = src.streams.video[0]
        sink = io.BytesIO()
        with av.open(sink, "w", format="mpeg") as out:
            ostream = out.add_stream_from_template(stream)
            for packet in src.demux(stream):
                if packet.dts is None:
                    continue
                packet.stream = ostream
                out.mux(packet)
    return time.thread_time() - start


def bare_round_pct(ts: bytes, span: float, streams: int) -> float:
    """% of a core per stream PyAV takes to remux a stream's bytes (the clip, `span` s)."""
    cpu = sum(bare_remux_cpu_s(ts) for _ in range(streams * BARE_REPEAT))
    return cpu / (streams * BARE_REPEAT * span) * 100


def continuous_ts(clip: bytes, loops: int) -> bytes:
    """The clip `loops` times as one MPEG-TS stream, timestamps continuing (made once, before
    any measurement: a live feed's timestamps never jump back)."""
    sink = io.BytesIO()
    with av.open(sink, "w", format="mpegts") as out:
        ostream: Any = None
        offset, last = 0, -1
        for _ in range(loops):
            with av.open(io.BytesIO(clip), "r", format="mpegts") as src:
                stream = src.streams.video[0]
                if ostream is None:
                    ostream = out.add_stream_from_template(stream)
                base = None
                for packet in src.demux(stream):
                    if packet.dts is None or packet.pts is None:
                        continue
                    base = packet.dts if base is None else base
                    if packet.dts - base + offset <= last:
                        offset = last + 3600 - (packet.dts - base)
                    packet.dts, packet.pts = packet.dts - base + offset, packet.pts - base + offset
                    last = packet.dts
                    packet.stream = ostream
                    out.mux(packet)
            offset = last + 3600
    return sink.getvalue()


class _Remux:
    """One stream's open containers: TS in, PS out (into a buffer emptied as it fills)."""

    def __init__(self, ts: bytes) -> None:
        self.src = av.open(io.BytesIO(ts), "r", format="mpegts")
        stream = self.src.streams.video[0]
        self.tb = float(stream.time_base or 1 / 90_000)
        self.sink = io.BytesIO()
        self.out = av.open(self.sink, "w", format="mpeg")
        self.ostream = self.out.add_stream_from_template(stream)
        self.packets: Iterator[Any] = self.src.demux(stream)
        self.start: float | None = None
        self.pending: Any = None

    def until(self, seconds: float) -> int:
        """Remux every packet up to `seconds` of stream time; how many."""
        n = 0
        while True:
            packet = self.pending if self.pending is not None else next(self.packets, None)
            self.pending = None
            if packet is None:
                return n
            if packet.dts is None:
                continue
            t = packet.dts * self.tb
            self.start = t if self.start is None else self.start
            if t - self.start > seconds:
                self.pending = packet
                return n
            packet.stream = self.ostream
            self.out.mux(packet)
            n += 1
            if self.sink.tell() > 1 << 20:
                self.sink.seek(0)
                self.sink.truncate()

    def close(self) -> None:
        self.out.close()
        self.src.close()


def continuous_round_pct(long_ts: bytes, seconds: float, streams: int) -> float:
    """% of a core per stream: each stream's `seconds` of the continuous TS remuxed in one go,
    its containers opened first (not timed)."""
    remuxes = [_Remux(long_ts) for _ in range(streams)]
    start = time.thread_time()
    for r in remuxes:
        r.until(seconds)
    cpu = time.thread_time() - start
    for r in remuxes:
        r.close()
    return cpu / (streams * seconds) * 100


def paced_round_pct(long_ts: bytes, window: float, streams: int, tick_s: float) -> float:
    """% of a core per stream: the continuous remux in real time for `window` s, one thread
    woken every `tick_s` for all streams (its own CPU clock; containers opened first)."""
    remuxes = [_Remux(long_ts) for _ in range(streams)]
    result: list[float] = []

    def run() -> None:
        t0 = time.monotonic()
        cpu0 = time.thread_time()
        due = tick_s
        while due <= window:
            delay = t0 + due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for r in remuxes:
                r.until(due)
            due += tick_s
        result.append(time.thread_time() - cpu0)

    thread = threading.Thread(target=run, name="bare-paced")
    thread.start()
    thread.join()
    for r in remuxes:
        r.close()
    return result[0] / (streams * window) * 100
