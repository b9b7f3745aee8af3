"""The cascade service's plain parts: what it asks of the rest of the controller (`Backend`:
the catalog, the store, the scheduler, the audit log) and one upper platform's stream
(`Session`). Kept apart from controller/gb28181/service.py, which handles the SIP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from controller.gb28181 import footage, sdp
from controller.gb28181.codes import Place
from controller.gb28181.media import Pace, Sink, StreamStats
from controller.gb28181.ps import AccessUnit
from controller.gb28181.upper import UpperLink
from controller.live.viewer import Viewer


class Backend(Protocol):
    """What the endpoint reads and records; blocking calls, run on worker threads."""

    def places(self) -> list[Place]: ...

    def visible(
        self, org: str, areas: Sequence[str], places: Sequence[Place]
    ) -> frozenset[str]: ...

    def ranges(self, camera_id: str, start_us: int, end_us: int) -> list[tuple[int, int]]: ...

    def segments(self, camera_id: str, start_us: int, end_us: int) -> list[tuple[str, int]]: ...

    def on_device(self, camera_id: str, start_us: int, end_us: int) -> list[tuple[int, int]]: ...

    def request_footage(
        self, link: UpperLink, camera_id: str, start_us: int, end_us: int
    ) -> footage.Filed: ...

    def read(self, key: str) -> bytes: ...

    def offline_channels(self) -> frozenset[str]: ...

    def audit(
        self,
        action: str,
        link: UpperLink,
        camera_id: str,
        outcome: str,
        reason: str,
        detail: dict[str, Any],
    ) -> None: ...


@dataclass(eq=False)
class Session:
    call_id: str
    link: UpperLink
    camera_id: str
    code: str
    offer: sdp.Offer
    sink: Sink
    to_tag: str
    remote_from: str
    remote_contact: str
    units: AsyncIterator[AccessUnit] | None  # None: live, delivered by the pump
    pace: Pace | None = None
    stats: StreamStats = field(default_factory=StreamStats)
    task: asyncio.Task[None] | None = None
    invited_at: float = 0.0
    ended: bool = False
    ssrc: str = "0"
    viewer: Viewer | None = None
