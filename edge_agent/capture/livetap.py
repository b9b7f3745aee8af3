"""What capture knows of the live view: a tap that sees each session's stream and packets.

Kept as a protocol so capture does not depend on edge_agent/live (which muxes and talks to
the controller); `NO_TAP` is the default of a camera nobody wired a tap to.
"""

from __future__ import annotations

from typing import Any, Protocol

from av.packet import Packet
from av.video.stream import VideoStream


class PacketTap(Protocol):
    @property
    def active(self) -> bool: ...  # a viewer watches: capture must not delay packets

    def begin(self, stream: VideoStream) -> None: ...

    def packet(self, packet: Packet[Any]) -> None: ...

    def end(self, reason: str) -> None: ...


class TapSource(Protocol):
    def tap(self, camera_id: str) -> PacketTap: ...


class _NoTap:
    active = False

    def begin(self, stream: VideoStream) -> None:
        pass

    def packet(self, packet: Packet[Any]) -> None:
        pass

    def end(self, reason: str) -> None:
        pass


NO_TAP: PacketTap = _NoTap()
