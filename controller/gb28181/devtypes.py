"""What the device-access shell (`devices.DeviceAccess`) keeps of each registered device, and
the two interfaces it is built on: the device rows (blocking, on worker threads) and the
Catalog subscriptions (`catalog_sub`), which need `Device` but must not import the shell.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from controller.gb28181 import access
from controller.gb28181.manscdp import Channel
from controller.gb28181.transport import Addr, Inbound


class DeviceBackend(Protocol):
    """The device rows (blocking calls, run on worker threads)."""

    def known(self, device_id: str) -> access.Known | None: ...

    def registered(self, device_id: str, contact: str, expires_s: int) -> None: ...

    def set_channels(self, device_id: str, channels: Sequence[Channel]) -> int: ...

    def own_channels(self, device_id: str) -> dict[str, str]: ...

    def apply_changes(
        self,
        device_id: str,
        upsert: Sequence[Channel],
        status: Mapping[str, str],
        listed: Sequence[str],
    ) -> dict[str, str]: ...

    def seen(self, device_id: str) -> None: ...

    def unanswered(self, device_id: str) -> None: ...

    def elsewhere(self, device_id: str) -> str: ...


@dataclass(slots=True)
class Device:
    device_id: str
    addr: Addr
    until: float  # loop time the registration expires
    last_seen: float
    keepalives: int = 0
    channels: int = -1  # -1: no Catalog answer stored yet
    pages: dict[str, list[Channel]] = field(default_factory=dict)  # SN -> items so far
    call_id: str = field(default_factory=lambda: secrets.token_hex(12))
    cseq: int = 0
    # Bumped by a registration that is not a refresh (another Call-ID or address, or after
    # the last one lapsed): the device restarted, and any INVITE session with it is gone.
    epoch: int = 1
    reg_call_id: str = ""
    channel_codes: list[str] | None = None  # from its last Catalog answer; None: not yet
    # Each of those channels' last Catalog status (ON, OFF, UNKNOWN): OFF is not recorded.
    channel_status: dict[str, str] = field(default_factory=dict)
    seen_written: float = 0.0  # loop time its row's last_seen_us was last written
    # Loop time a request to it (an INVITE) went unanswered; None once it is heard from again.
    # Meanwhile INVITEs to its channels fail at once instead of each waiting for a timeout.
    unanswered_at: float | None = None
    unanswered_why: str = ""  # what failed then (said to the viewers of its other channels)
    tcp: bool = False  # registered over TCP: requests to it go on its connection
    # Registered over TCP: where Vigil connects when its connection is closed (`dial.target`
    # of its last authenticated REGISTER); None over UDP.
    dial: Addr | None = None
    catalog_asked: float | None = None  # loop time of the last Catalog query sent to it
    # Loop time the Catalog query of a fresh registration went out, until its answer is
    # stored (or the query is refused): recording waits for it, briefly (`supervise.hold`).
    catalog_wait: float | None = None


class Subscriptions(Protocol):
    """Catalog subscriptions to devices (`catalog_sub.CatalogSubscriber`)."""

    def start(self, dev: Device) -> None: ...

    def stop(self, device_id: str) -> None: ...

    async def on_notify(self, inbound: Inbound, dev: Device) -> None: ...

    async def close(self) -> None: ...
