"""Capture from a recording folder: an NVR's finished recordings, or a handheld terminal's clips.

Each complete file (see `edge_agent.sources.folder`) is remuxed into segments exactly like a
live stream, with the file's own start time as the anchor. A file that cannot be used (corrupt,
truncated before any video, not H.264/H.265, an NVR file without a start time in its name) is
refused with an error naming it, recorded in the ledger and as a `file_rejected` event, and the
folder goes on. A file damaged part-way keeps the segments before the damage.

NVR recordings form one timeline: a file that starts where the previous one ended (within a
second: names carry whole seconds) continues it; a later one leaves a recorded gap. Handheld
clips are separate recordings: each starts a DISCONTINUITY segment and no gap is implied.

Restart safety: a file is marked done in the ledger only after its last segment is committed.
If the agent stops or dies part-way, the file is read again and packets before the end of what
the buffer already holds for that file's time range are skipped, so no segment is duplicated.
(A stop drops the unfinished segment rather than committing it cut short: the file still holds
that video, so the next run captures it whole.)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

from av.packet import Packet
from av.video.stream import VideoStream

from edge_agent.model import SegmentFlag
from edge_agent.sources.errors import RecordingFileError, SourceError
from edge_agent.sources.folder import FolderLedger, Seen, observe, ready, scan_folder
from edge_agent.sources.recording import FileFacts, RecordingFile

from .status import media_seconds
from .worker import CameraWorker

log = logging.getLogger(__name__)

CONTIGUOUS_US = 1_000_000
_UNKNOWN_DURATION_US = 86_400_000_000


class FolderWorker(CameraWorker):
    """Watches one folder and ingests each complete recording once."""

    def _run(self) -> None:
        self._init_coverage()
        root = Path(self.camera.path)
        ledger = FolderLedger(self._settings.state_dir / f"{self.camera_id}.json")
        remembered, covered = ledger.covered_until_us, self.writer.covered_until_us
        if remembered is not None and (covered is None or remembered > covered):
            self.writer.covered_until_us = remembered
        poll = min(self._settings.folder_poll_s, max(0.1, self.camera.settle_seconds / 2))
        seen: dict[str, Seen] = {}
        while not self._stop.is_set():
            try:
                listing = scan_folder(root)
            except OSError as exc:
                self._down(f"camera {self.camera_id}: cannot read folder {root}: {exc}")
                self._stop.wait(poll)
                continue
            self._up()
            seen = observe(seen, listing, self._clock.monotonic())
            for name in ready(
                seen, ledger.handled(), self.camera.settle_seconds, self._clock.monotonic()
            ):
                if self._stop.is_set():
                    break
                self._ingest(ledger, root, name, listing[name])
            try:
                ledger.forget_missing(listing)
            except OSError as exc:
                log.error(
                    "camera %s: cannot update ledger %s: %s", self.camera_id, ledger.path, exc
                )
            self._stop.wait(poll)

    def _ingest(self, ledger: FolderLedger, root: Path, name: str, listed: FileFacts) -> None:
        path = root / name
        try:
            named = self.camera.kind == "nvr_folder"
            rec = RecordingFile.open(self.camera_id, path, self.camera.zone, named=named)
        except SourceError as exc:
            log.error("%s; skipping it", exc)
            self._tracker.set_error(str(exc))
            self._emit("file_rejected", detail=str(exc))
            self._mark(ledger, name, listed, "rejected", str(exc))
            return
        try:
            self._remux(ledger, name, rec)
        finally:
            rec.close()

    def _remux(self, ledger: FolderLedger, name: str, rec: RecordingFile) -> None:
        anchor, prior, reason, flags = self._placement(rec.start_us)
        span = rec.duration_us or _UNKNOWN_DURATION_US
        resume = self._resume_point(anchor, span)
        if resume is not None:
            log.info("camera %s: resuming %s after what is already buffered", self.camera_id, name)
            prior = resume
        self.writer.begin(
            rec.stream,
            anchor,
            live=False,
            prior_end_us=prior,
            gap_reason=reason,
            flags=flags,
            skip_before_us=resume,
            audio=rec.audio,
        )
        video = rec.stream.index
        committed = self.writer.segments_committed
        written = 0
        error: SourceError | None = None
        try:
            for packet in rec.packets():
                if packet.stream_index != video:
                    self.writer.feed(packet, None)  # audio: rides on the video's segments
                    continue
                size, key = packet.size, packet.is_keyframe
                media = media_seconds(cast("Packet[VideoStream]", packet))
                if self.writer.feed(packet, None):
                    written += 1
                self._tracker.packet(size, key, self._clock.now_us(), media)
                if self._stop.is_set():
                    break
        except RecordingFileError as exc:
            error = exc
        if self._stop.is_set():
            # The file stays on disk: drop the unfinished segment and leave the file unmarked,
            # so the restart resumes at that segment's keyframe, without a gap.
            self.writer.cancel()
            return
        self.writer.end(truncated=error is not None or rec.truncated)
        new_segments = self.writer.segments_committed - committed
        detail = f"{new_segments} segments"
        if error is not None:
            log.error("%s; kept the %d segments before the damage", error, new_segments)
            detail = f"{error} ({new_segments} segments kept)"
        elif rec.truncated:
            log.warning(
                "camera %s: %s is truncated (cut off mid-packet); kept the %d segments that play",
                self.camera_id,
                rec.path,
                new_segments,
            )
        if rec.corrupt_packets:
            log.warning(
                "camera %s: %s has %d corrupt packets",
                self.camera_id,
                rec.path,
                rec.corrupt_packets,
            )
        if written == 0 and resume is None:
            msg = f"camera {self.camera_id}: {rec.path} has no keyframe; nothing could be captured"
            log.error("%s", msg)
            self._tracker.set_error(msg)
            self._emit("file_rejected", detail=msg)
            self._mark(ledger, name, rec.facts, "rejected", msg)
            return
        self._mark(ledger, name, rec.facts, "done", detail)
        log.info("camera %s: ingested %s (%s)", self.camera_id, name, detail)

    def _placement(self, start_us: int) -> tuple[int, int | None, str, SegmentFlag]:
        """(anchor, prior end, gap reason, first flags) for a recording starting at start_us."""
        prior = self.writer.covered_until_us
        if self.camera.kind == "handheld_folder" or prior is None:
            first = SegmentFlag.DISCONTINUITY if prior is not None else SegmentFlag.NONE
            return start_us, None, "", first
        if abs(start_us - prior) <= CONTIGUOUS_US:
            return prior, prior, "", SegmentFlag.NONE
        if start_us > prior:
            return start_us, prior, "no recording in the NVR folder", SegmentFlag.DISCONTINUITY
        return start_us, None, "", SegmentFlag.DISCONTINUITY  # older than what we hold

    def _resume_point(self, start_us: int, span_us: int) -> int | None:
        """The end of what the buffer already holds within this recording's time range."""
        try:
            held = self._sink.segments(self.camera_id, start_us=start_us, end_us=start_us + span_us)
        except Exception as exc:  # capture anyway; at worst a re-read file duplicates video
            log.error("camera %s: cannot query the buffer: %s", self.camera_id, exc)
            return None
        return max((s.end_us for s in held), default=None)

    def _mark(
        self, ledger: FolderLedger, name: str, facts: FileFacts, outcome: str, detail: str
    ) -> None:
        try:
            ledger.mark(name, facts, outcome, detail, self.writer.covered_until_us)
        except OSError as exc:
            log.error("camera %s: cannot update ledger %s: %s", self.camera_id, ledger.path, exc)
