"""Continuous recording of GB/T 28181 device channels: the decisions (pure, no I/O, no clock).

The shell (`recording.py`) keeps one INVITE session per recorded channel and asks these
functions, once per tick, what to do:

- `wanted`: whether a channel records at all (the `[gb28181] record` globs, matched against
  the channel's code and its device's code, so one entry can take a whole NVR);
- `drop_reason`: whether a running session is dead: the device said BYE, it registered
  afresh (restarted: its dialog with Vigil is gone), it unregistered or its registration
  lapsed, no RTP for `rtp_timeout_s` since the last packet, or none at all within
  `first_packet_s` of the INVITE (devices may wait for their next keyframe to start);
- `hold`: whether a recorded channel is not INVITEd now: its device's Catalog reports it
  OFF (an INVITE would fail or stay silent; the history says why instead), or a device that
  registered afresh has not answered the Catalog query that registration sent (briefly: it
  may have lost that channel, or report it OFF);
- `after_drop` / `after_failure`: when to INVITE again. Exponential backoff from
  `reinvite_min_s`, capped at `reinvite_max_s`; a session that stayed up for `stable_s`
  starts the count afresh, so a device that drops once a day is re-INVITEd at once, one that
  drops every few seconds is not hammered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from controller.gb28181.devstate import DeviceState, judge_channel


@dataclass(frozen=True, slots=True)
class Timing:
    rtp_timeout_s: float = 10.0
    first_packet_s: float = 10.0
    reinvite_min_s: float = 2.0
    reinvite_max_s: float = 60.0
    stable_s: float = 60.0
    invite_answer_s: float = 2.0  # nothing back from an INVITE in this long: not there


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What the shell knows about one running session (times on one monotonic clock)."""

    invited_at: float
    last_packet_at: float | None  # None: nothing received yet
    epoch: int  # the device's registration epoch when it was INVITEd
    device_epoch: int | None  # its epoch now; None: not registered (any more)
    remote_bye: bool


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int  # failures in a row so far
    at: float  # when to INVITE again


def wanted(patterns: Sequence[str], device_id: str, channel: str) -> bool:
    return any(fnmatchcase(channel, p) or fnmatchcase(device_id, p) for p in patterns)


def drop_reason(s: SessionFacts, now: float, timing: Timing) -> str | None:
    """Why the session is over, or None while it is alive. Reasons are the state-change
    reasons the history keeps (ASCII, short)."""
    if s.remote_bye:
        return "gb: device sent BYE"
    if s.device_epoch is None:
        return "gb: device unregistered"
    if s.device_epoch != s.epoch:
        return "gb: device registered again (restarted)"
    if s.last_packet_at is None:
        if now - s.invited_at >= timing.first_packet_s:
            return f"gb: no RTP within {timing.first_packet_s:g} s of the INVITE"
    elif now - s.last_packet_at >= timing.rtp_timeout_s:
        return f"gb: RTP silent for {timing.rtp_timeout_s:g} s"
    return None


CATALOG_WAIT_S = 3.0  # a restarted device's Catalog answer waited for, at most, before INVITEs
WAIT_CATALOG = "wait"  # `hold`: waiting for the Catalog answer (nothing written)
# The history's reason for a channel held because its Catalog says OFF: the fleet view's
# reason key (`devstate.CATALOG_OFF`) and its zh-CN words, as the console says them.
CATALOG_OFF_NOTE = "gb: catalog_off 通道离线（设备目录报告 OFF）"


def hold(status: str, live: bool, catalog_wait: float | None, now: float) -> str | None:
    """Why a channel with no session is not INVITEd now (None: INVITE it). `status`: its
    last Catalog status; `live`: someone watches it (a viewer asked: INVITEd whatever the
    device says, and told the device's answer); `catalog_wait`: when the Catalog query of
    its device's fresh registration went out, unanswered so far (None: not waiting).
    `WAIT_CATALOG` within `CATALOG_WAIT_S` of that query; `CATALOG_OFF_NOTE` while its
    device (online: only then is anything INVITEd) reports it OFF (`devstate.judge_channel`,
    the rule the fleet view shows), so the recording gap has its reason and the device is
    not INVITEd in vain every backoff; back ON, it is INVITEd at once."""
    if live:
        return None
    if catalog_wait is not None and 0 <= now - catalog_wait < CATALOG_WAIT_S:
        return WAIT_CATALOG
    if judge_channel(DeviceState(True, ""), status).online:
        return None
    return CATALOG_OFF_NOTE


def backoff_s(attempts: int, timing: Timing) -> float:
    """The wait before INVITE number `attempts` + 1 after `attempts` failures in a row."""
    if attempts <= 0:
        return 0.0
    return float(min(timing.reinvite_max_s, timing.reinvite_min_s * 2 ** min(attempts - 1, 30)))


def after_drop(attempts: int, up_for_s: float, now: float, timing: Timing) -> Retry:
    """A session that was up `up_for_s` ended: a stable one starts the count over."""
    n = 1 if up_for_s >= timing.stable_s else attempts + 1
    return Retry(n, now + backoff_s(n, timing))


def after_failure(attempts: int, now: float, timing: Timing) -> Retry:
    """An INVITE refused or unanswered."""
    return Retry(attempts + 1, now + backoff_s(attempts + 1, timing))


UDP, TCP_PASSIVE, TCP_ACTIVE = "udp", "tcp-passive", "tcp-active"  # Vigil's side of the media


def media_mode(passive: Sequence[str], active: Sequence[str], device_id: str, code: str) -> str:
    """How a channel's media comes in: over TCP with Vigil connecting (`active` globs: the
    device can only listen), over TCP with the device connecting (`passive`), else UDP."""
    if wanted(active, device_id, code):
        return TCP_ACTIVE
    return TCP_PASSIVE if wanted(passive, device_id, code) else UDP
