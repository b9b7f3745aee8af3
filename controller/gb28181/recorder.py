"""Recording a GB/T 28181 device channel: its frames (devplay) cut into keyframe-aligned
MPEG-TS segments and committed to the store, catalog and hash chain as agent footage is.

`SegmentCutter` (pure) starts a segment at the first keyframe and cuts at the first keyframe
`segment_s` or more after it; a segment's time is the wall clock at its channel's first frame
plus the PTS elapsed since (a device's PTS has no epoch). Each cut is remuxed to MPEG-TS by
PyAV (no decoding) and committed through ingest's `Committer` on a worker thread: object
store first, then the catalog row, its `prev_sha256` the previous segment's hash (the chain
the ingest rules judge, exactly as for an agent's upload). Audio (G.711 or AAC in the PS) is
kept in the segment it arrived in (`tsmux`).

One Recorder serves a channel across its INVITE sessions (`new_session` after a drop): the
chain goes on from the last segment before the drop, so the time between is a recording gap
the catalog's accounting sees (`camera_hour.gap_us`), not a break in the chain; a segment
never starts before the previous one ended (the device's PTS and Vigil's clock may disagree).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controller.catalog.models import CameraRow
from controller.gb28181.ps import VIDEO_TYPES, AccessUnit
from controller.gb28181.tsmux import DEVICE_AUDIO, PTS_WRAP, mux_ts
from controller.ingest.commit import Committed, Committer
from controller.ingest.rules import Header
from controller.media.probe import probe_file
from controller.storage import ObjectStore
from controller.storage.base import put_owned_file

log = logging.getLogger("vigil.gb28181")


@dataclass(frozen=True, slots=True)
class Cut:
    units: list[AccessUnit]
    start_pts: int
    end_pts: int


class SegmentCutter:
    """Video frames decide the cuts; audio packets go into the segment they arrive in."""

    def __init__(self, segment_s: float) -> None:
        self.segment_ticks = int(segment_s * 90_000)
        self.units: list[AccessUnit] = []
        self._last_step = 3600  # one frame at 25 fps, until two frames say otherwise
        self._last_pts = 0  # of the newest video frame

    def add(self, au: AccessUnit) -> Cut | None:
        if au.pts is None:
            return None
        if au.stream_type in DEVICE_AUDIO:
            if self.units:
                self.units.append(au)
            return None
        if au.stream_type not in VIDEO_TYPES:
            return None
        if not self.units:
            if au.key:
                self.units.append(au)
                self._last_pts = au.pts
            return None  # nothing before the first keyframe
        first = self.units[0].pts or 0
        self._last_step = ((au.pts - self._last_pts) % PTS_WRAP) or self._last_step
        self._last_pts = au.pts
        if au.key and (au.pts - first) % PTS_WRAP >= self.segment_ticks:
            cut = Cut(self.units, first, au.pts)
            self.units = [au]
            return cut
        self.units.append(au)
        return None

    def flush(self) -> Cut | None:
        if not self.units:
            return None
        cut = Cut(self.units, self.units[0].pts or 0, self._last_pts + self._last_step)
        self.units = []
        return cut


class Recorder:
    """`on_unit` for devplay.play: cuts, and commits each segment on a worker thread."""

    def __init__(
        self, committer: Committer, store: ObjectStore, camera: CameraRow,
        wall_start_us: Callable[[], int], segment_s: float = 10.0,
        prev_sha: str = "", last_end_us: int = 0,
    ) -> None:  # fmt: skip
        self.committer, self.store, self.camera = committer, store, camera
        self.segment_s = segment_s
        self.cutter = SegmentCutter(segment_s)
        self._now_us = wall_start_us
        self._origin: tuple[int, int] | None = None  # (pts, wall µs) of the first frame
        self.prev_sha = prev_sha  # the chain goes on from the camera's last segment
        self.last_end_us = last_end_us
        self.committed: list[Committed] = []
        self._pending: list[asyncio.Future[None]] = []

    def new_session(self) -> None:
        """The next frames come from a new INVITE (after `close`): a new PTS origin."""
        self.cutter = SegmentCutter(self.segment_s)
        self._origin = None

    def on_unit(self, au: AccessUnit) -> None:
        if self._origin is None and au.pts is not None:
            self._origin = (au.pts, self._now_us())
        cut = self.cutter.add(au)
        if cut is not None:
            self._submit(cut)

    async def close(self) -> None:
        """Commit what is left (after BYE) and wait for every commit."""
        cut = self.cutter.flush()
        if cut is not None:
            self._submit(cut)
        await asyncio.gather(*self._pending, return_exceptions=True)
        self._pending = []

    def _submit(self, cut: Cut) -> None:
        assert self._origin is not None
        pts0, wall0 = self._origin
        start_us = wall0 + ((cut.start_pts - pts0) % PTS_WRAP) * 100 // 9
        start_us = max(start_us, self.last_end_us)
        duration_us = ((cut.end_pts - cut.start_pts) % PTS_WRAP) * 100 // 9
        self.last_end_us = start_us + duration_us
        loop = asyncio.get_running_loop()
        # commits run one after another (each links to the one before); done ones let go
        self._pending = [t for t in self._pending if not t.done()]
        previous = self._pending[-1] if self._pending else None
        task = self._commit_after(previous, cut, start_us, duration_us)
        self._pending.append(loop.create_task(task))

    async def _commit_after(
        self, previous: asyncio.Future[None] | None, cut: Cut, start_us: int, duration_us: int
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(
            None, self._commit, cut, start_us, duration_us
        )

    def _commit(self, cut: Cut, start_us: int, duration_us: int) -> None:
        data = mux_ts(cut.units)
        sha = hashlib.sha256(data).hexdigest()
        cam = self.camera.camera_id
        header = Header(
            f"gb-{cam}-{start_us}", cam, start_us, duration_us, len(data), sha, self.prev_sha
        )
        with tempfile.TemporaryDirectory(prefix="vigil-gb-") as tmp:
            path = Path(tmp) / "segment.ts"
            path.write_bytes(data)
            key = self.committer.key_for(self.camera, header)
            media = self.committer.media(header, probe_file(path))
            put_owned_file(self.store, key, path, sha)
        try:
            self.committed.append(self.committer.record(self.camera.device_id, header, key, media))
        except Exception:
            log.exception("camera %s: segment at %d not recorded", cam, start_us)
            raise
        self.prev_sha = sha
