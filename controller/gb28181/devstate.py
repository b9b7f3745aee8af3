"""Whether a GB/T 28181 device is alive, judged from its `gb_device` row alone (pure).

The fleet view of every replica reads the same row (the device's SIP dialogs live on the
replica it registered to, but the console may be served by another), so the judgement uses
only what the row holds: the registration's expiry, the last REGISTER or keepalive, an
INVITE that went unanswered after that, and a revocation. Keepalives are written at most
every `SEEN_WRITE_S`, so "silent" allows that much on top of the timeout. `moved`: a device
that registered to another replica since is no longer this one's to INVITE.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def write_seen(last_written: float, now: float) -> bool:
    """Whether a keepalive at `now` is written to the row (the last write at `last_written`,
    the same clock): the row needs freshness within `SEEN_WRITE_S`, not every keepalive."""
    return now - last_written >= SEEN_WRITE_S


def moved(holder: str, mine: str) -> bool:
    """Whether a device whose row names replica `holder` has left replica `mine` (each
    REGISTER writes the replica that took it, so the row names the latest one)."""
    return bool(holder) and holder != mine
