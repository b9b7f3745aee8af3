"""The capture-side adapter of image health: decode one keyframe per camera per interval.

The capture loop hands every video packet to `ImageSampler.packet`; all but a keyframe due
for a check (about one a minute, or each keyframe when the GOP is longer) return at once. The
interval is 61 s, not 60: a source repeating a loop whose length divides a minute (the
emulator's 4 s loops) would otherwise be sampled at the same frame each time and look frozen.
The due keyframe is decoded by a PyAV decoder made for that one sample and freed after it,
and the memory it freed is given back to the system (`edge_agent.memory`); the capture path
itself never decodes. A decoder kept between samples held its frame pool and tables (~6 MB
per 1080p camera, more while decoding) for good: 8 cameras' agent grew from ~120 to ~170 MB
(docs/benchmarks.md, "Agent capture"). The picture is scaled to 160x90 gray, checked
(`checks`), and a confirmed change is an event:
`image_fault` ("frozen: ..."), or `image_ok` when it cleared. Any decode error skips that
sample (counted), never disturbs capture. Cost per camera: bench/report.py measures it
against capture's (goal: under a tenth).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from edge_agent.image import checks as ck
from edge_agent.memory import release_free_memory

log = logging.getLogger(__name__)

# (kind, detail): "image_fault" / "image_ok" with the fault and its measures.
Report = Callable[[str, str], None]


class ImageSampler:
    def __init__(self, camera_id: str, report: Report, interval_s: float = 61.0) -> None:
        self.camera_id = camera_id
        self._report = report
        self._interval = interval_s
        self._next = 0.0
        self._codec: str | None = None  # the session's video codec; None: no image health
        self._extradata: bytes | None = None
        self._previous: ck.Frame | None = None
        self._judge = ck.Judge()
        self.samples = 0
        self.errors = 0
        self.cpu_s = 0.0  # thread CPU spent decoding and checking (bench/report.py reads it)

    def begin(self, stream: Any) -> None:
        """A new connection: its codec and parameter sets, for the decoders of its samples
        (the previous picture is kept, so a camera that reconnects onto the same frozen
        picture is still frozen)."""
        import av

        name = stream.codec_context.name
        try:
            av.CodecContext.create(name, "r")  # an unknown codec fails here, not per sample
        except Exception as exc:  # an unknown codec: no image health for this session
            log.warning("camera %s: no image health: %s", self.camera_id, exc)
            self._codec = None
            return
        self._codec = name
        self._extradata = stream.codec_context.extradata or None

    def packet(self, packet: Any, monotonic_s: float) -> None:
        if self._codec is None or not packet.is_keyframe or monotonic_s < self._next:
            return
        self._next = monotonic_s + self._interval
        started = time.thread_time()
        try:
            frame = self._decode(packet)
        except Exception as exc:
            self.errors += 1
            log.debug("camera %s: image sample not decoded: %s", self.camera_id, exc)
            return
        finally:
            release_free_memory()  # the decoder's ~12 MB, freed, back to the system
            self.cpu_s += time.thread_time() - started
        if frame is None:
            return
        started = time.thread_time()
        self.check(frame)
        self.cpu_s += time.thread_time() - started

    def _decode(self, packet: Any) -> ck.Frame | None:
        import av

        if self._codec is None:
            return None
        decoder: Any = av.CodecContext.create(self._codec, "r")
        decoder.thread_count = 1  # one keyframe a minute: no decoding threads kept around
        if self._extradata:
            decoder.extradata = self._extradata
        frames = decoder.decode(av.Packet(bytes(packet)))
        if not frames:
            frames = decoder.decode(None)  # flush: a keyframe decodes alone
        del decoder  # its frame pool goes now; `frames` holds only the picture
        if not frames:
            return None
        small = frames[-1].reformat(width=ck.WIDTH, height=ck.HEIGHT, format="gray")
        plane = small.planes[0]
        stride, raw = plane.line_size, bytes(plane)
        luma = b"".join(raw[r * stride : r * stride + ck.WIDTH] for r in range(ck.HEIGHT))
        return ck.Frame(ck.WIDTH, ck.HEIGHT, luma)

    def check(self, frame: ck.Frame) -> None:
        """Check one frame and report a confirmed change (also what tests call directly)."""
        self.samples += 1
        m = ck.measure(frame, self._previous)
        self._previous = frame
        self._judge, verdict = ck.judge(self._judge, ck.fault_of(m))
        if verdict is None:
            return
        detail = (
            f"mean {m.mean:.1f} std {m.std:.1f} sharpness {m.laplacian_var:.1f} "
            f"flat tiles {m.flat_tiles}/16" + ("" if m.diff is None else f" change {m.diff:.2f}")
        )
        if verdict == "ok":
            self._report("image_ok", f"ok: picture healthy again ({detail})")
        else:
            self._report("image_fault", f"{verdict}: {detail}")
