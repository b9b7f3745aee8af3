"""What capture needs of the durable buffer, and how its failures read in gaps and logs."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import av.error

from edge_agent.model import Gap, SegmentFlag, SegmentInfo, SegmentState
from edge_agent.redact import redact_text

_MAX_REASON = 200


class SegmentSink(Protocol):
    """The part of `edge_agent.store.SegmentBuffer` capture uses (it is thread-safe)."""

    def temp_path(self, camera_id: str, container: str = "ts") -> Path: ...

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
    ) -> SegmentInfo: ...

    def discard(self, temp_path: Path) -> None: ...

    def record_gap(self, gap: Gap) -> None: ...

    def segments(
        self,
        camera_id: str | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        state: SegmentState | None = None,
    ) -> list[SegmentInfo]: ...

    def gaps(
        self, camera_id: str | None = None, start_us: int | None = None, end_us: int | None = None
    ) -> list[Gap]: ...


def clean_reason(text: str) -> str:
    """A gap reason the buffer accepts: printable, one line, at most 200 characters."""
    line = "".join(ch if ch.isprintable() else " " for ch in redact_text(text)).strip()
    return (line or "unknown")[:_MAX_REASON]


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, av.error.FFmpegError):
        return redact_text(exc.strerror or type(exc).__name__)
    return redact_text(str(exc) or type(exc).__name__)
