"""One camera's record in the buffer: committed segments and recorded gaps, and the events
and log lines that go with them. A failure to store is logged and becomes a gap; it never
stops capture."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from edge_agent.model import Gap, SegmentInfo
from edge_agent.segmenter import ClosedSegment, GapSpan

from .sink import SegmentSink, clean_reason, describe_error

log = logging.getLogger(__name__)

EventCallback = Callable[[str, str], None]  # (kind, detail): an AgentEvent for this camera


class CameraRecord:
    """Not thread-safe: it belongs to one writer."""

    def __init__(
        self,
        camera_id: str,
        sink: SegmentSink,
        container: str,
        on_segment: Callable[[SegmentInfo], None] | None = None,
        on_gap: Callable[[Gap], None] | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.sink = sink
        self._container = container
        self._on_segment = on_segment
        self._on_gap = on_gap
        self._on_event = on_event
        # Where this camera's record (segments and recorded gaps) reaches: the next connection's
        # first segment starts no earlier, and any time in between is reported as a gap.
        self.covered_until_us: int | None = None
        self.segments_committed = 0

    def store(
        self, closed: ClosedSegment, temp: Path, digest: tuple[int, str] | None
    ) -> SegmentInfo | None:
        """Commit a finished file as this segment (a failure: the file goes, the time is a gap)."""
        try:
            info = self.sink.commit(
                self.camera_id,
                temp,
                closed.start_us,
                max(1, closed.duration_us),
                closed.flags,
                self._container,
                digest=digest,
            )
        except Exception as exc:  # StoreError/DiskFullError and any I/O failure
            self.discard(temp)
            self.lost(closed, f"cannot store segment: {describe_error(exc)}")
            return None
        self.segments_committed += 1
        self.covered_until_us = max(self.covered_until_us or 0, info.end_us)
        if self._on_segment is not None:
            self._on_segment(info)
        return info

    def lost(self, closed: ClosedSegment, reason: str) -> None:
        log.error(
            "camera %s: segment [%d, %d) lost: %s",
            self.camera_id,
            closed.start_us,
            closed.end_us,
            reason,
        )
        if closed.duration_us > 0:
            self.gap(GapSpan(closed.start_us, closed.end_us, reason))

    def gap(self, span: GapSpan) -> None:
        gap = Gap(self.camera_id, span.start_us, span.end_us, clean_reason(span.reason))
        try:
            self.sink.record_gap(gap)
        except Exception as exc:  # a full disk must not stop capture
            log.error(
                "camera %s: cannot record gap [%d, %d) (%s): %s",
                self.camera_id,
                gap.start_us,
                gap.end_us,
                gap.reason,
                describe_error(exc),
            )
        else:
            self.covered_until_us = max(self.covered_until_us or 0, gap.end_us)
        log.warning(
            "camera %s: gap of %.3f s [%d, %d): %s",
            self.camera_id,
            (gap.end_us - gap.start_us) / 1e6,
            gap.start_us,
            gap.end_us,
            gap.reason,
        )
        if self._on_gap is not None:
            self._on_gap(gap)

    def discard(self, temp: Path) -> None:
        try:
            self.sink.discard(temp)
        except Exception as exc:  # the buffer removes stray temp files at open
            log.warning(
                "camera %s: cannot discard %s: %s", self.camera_id, temp, describe_error(exc)
            )

    def event(self, kind: str, detail: str) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(kind, detail)
        except Exception:  # a broken subscriber must not stop capture
            log.exception("camera %s: event subscriber failed on %s", self.camera_id, kind)
