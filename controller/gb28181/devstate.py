"""Whether a GB/T 28181 device is alive, judged from its `gb_device` row alone (pure).

The fleet view of every replica reads the same row (the device's SIP dialogs live on the
replica it registered to, but the console may be served by another), so the judgement uses
only what the row holds: the registration's expiry, the last REGISTER or keepalive, an
INVITE that went unanswered after that, and a revocation. Keepalives are written at most
every `SEEN_WRITE_S`, so "silent" allows that much on top of the timeout. `moved`: a device
that registered to another replica since is no longer this one's to INVITE.

A channel's state (`judge_channel`) is its device's, unless the device is online and its
last Catalog answer said the channel itself is OFF (an NVR whose camera lost power or its
cable): then the channel is offline with that reason. ON, or no readable Status, counts as
the device's state: an NVR that never says is not made to look broken.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.gb28181.manscdp import OFF

SEEN_WRITE_S = 30.0  # a device's keepalive is written to its row at most this often


@dataclass(frozen=True, slots=True)
class Liveness:
    """What the row says (µs, controller clock)."""

    registered_us: int
    expires_us: int
    last_seen_us: int
    unanswered_us: int
    revoked_us: int


@dataclass(frozen=True, slots=True)
class DeviceState:
    online: bool | None  # None: never registered
    reason: str  # why not online ("" when online)


def judge(row: Liveness, now_us: int, timeout_s: float) -> DeviceState:
    """Online: registered, not expired, heard from within `timeout_s` (+ the write interval)
    and not failing to answer since it was last heard from."""
    if row.revoked_us:
        return DeviceState(False, "password revoked")
    if not row.registered_us:
        return DeviceState(None, "never registered")
    if not row.expires_us:
        return DeviceState(False, "unregistered")
    if row.expires_us <= now_us:
        return DeviceState(False, "registration expired")
    seen = max(row.last_seen_us, row.registered_us)
    silent_s = (now_us - seen) / 1e6
    if silent_s > timeout_s + SEEN_WRITE_S:
        return DeviceState(False, f"no keepalive for {silent_s:.0f} s")
    if row.unanswered_us > seen:
        return DeviceState(False, "not answering INVITE")
    return DeviceState(True, "")


CATALOG_OFF = "catalog_off"  # reason key: the device online, its Catalog reports the channel OFF
DEVICE_OFFLINE = "device_offline"  # reason key: the device is not online (its reason follows)


@dataclass(frozen=True, slots=True)
class ChannelState:
    online: bool | None  # None: its device never registered
    reason: str  # "" when online, else CATALOG_OFF or DEVICE_OFFLINE (the console words it)
    detail: str = ""  # the device's own reason when it is offline


def judge_channel(device: DeviceState, status: str) -> ChannelState:
    """A channel from its device's judged state and its own last Catalog `status` (ON, OFF,
    UNKNOWN): the device not online, the channel neither; the device online and the channel
    reported OFF, offline; otherwise online."""
    if device.online is None:
        return ChannelState(None, DEVICE_OFFLINE, device.reason)
    if not device.online:
        return ChannelState(False, DEVICE_OFFLINE, device.reason)
    if status == OFF:
        return ChannelState(False, CATALOG_OFF)
    return ChannelState(True, "")


def channel_states(
    devices: Mapping[str, DeviceState], channels: Mapping[str, tuple[str, str]]
) -> dict[str, ChannelState]:
    """camera id -> its state, for channels (camera id -> (device code, Catalog status)) of
    the judged `devices`; channels of a device not among them are left out."""
    return {
        cam: judge_channel(devices[dev], status)
        for cam, (dev, status) in channels.items()
        if dev in devices
    }


@dataclass(frozen=True, slots=True)
class Registration:
    """A device's live registration as this replica holds it (loop seconds)."""

    call_id: str
    addr: tuple[str, int]
    until: float  # when it lapses


def afresh(
    held: Registration | None, call_id: str, addr: tuple[str, int], now: float, tcp: bool = False
) -> bool:
    """Whether a REGISTER that passed the digest check starts a registration anew rather
    than refreshing the live one `held` (None: none held here). Afresh: none held (first
    time, after an un-REGISTER, after a controller restart), another Call-ID (the device
    restarted: RFC 3261 keeps one Call-ID across refreshes), another source address, or the
    held one lapsed. A device starting anew may have gained or lost channels while down and
    has forgotten every dialog with Vigil: its catalog is asked again and its sessions are
    over. A refresh is neither (asking a 64-channel NVR its catalog every Expires/2 is load
    for nothing). `tcp` (it registered over TCP, now and before): only another host counts,
    not another port: every connection has a new source port, and a device whose connection
    broke (a NAT's idle timeout, a link flap) connects again and refreshes with its Call-ID;
    taking that for a restart ended and re-INVITEd every channel it recorded."""
    if held is None:
        return True
    moved_from = addr[0] != held.addr[0] if tcp else addr != held.addr
    return call_id != held.call_id or moved_from or held.until <= now


CATALOG_NOTIFY_GAP_S = 1.0  # a burst of Catalog NOTIFYs is answered with one query


def catalog_due(asked_at: float | None, now: float, refresh_s: float, notified: bool) -> bool:
    """Whether to send a registered device a Catalog query again (loop seconds; `asked_at`
    None: never asked here): on a Catalog NOTIFY (it says its channels changed) unless one
    was sent within `CATALOG_NOTIFY_GAP_S`; on a keepalive once the last is `refresh_s` old
    (a channel going OFF is learnt even from a device that never notifies)."""
    if asked_at is None:
        return True
    return now - asked_at >= (CATALOG_NOTIFY_GAP_S if notified else refresh_s)


def write_seen(last_written: float, now: float) -> bool:
    """Whether a keepalive at `now` is written to the row (the last write at `last_written`,
    the same clock): the row needs freshness within `SEEN_WRITE_S`, not every keepalive."""
    return now - last_written >= SEEN_WRITE_S


def moved(holder: str, mine: str) -> bool:
    """Whether a device whose row names replica `holder` has left replica `mine` (each
    REGISTER writes the replica that took it, so the row names the latest one)."""
    return bool(holder) and holder != mine
