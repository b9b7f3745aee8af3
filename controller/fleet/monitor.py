"""The device-state table's transition function: (record, message, time) -> (record, actions).

Pure. It carries the Sparkplug-B lessons in Vigil's terms:

- Sessions: every agent connection has a session number (it grows with each reconnect and
  each boot) carried in its `state`, Will, `birth`, `health` and `event`. A `birth` always
  starts the session it names (it only comes from a live connection). An `online=false` state
  (a Will or a clean goodbye) counts only for the current session, so a late Will from an old
  connection can never mark a reconnected device offline ("stale-death fencing").
- Sequence numbers: `health` and `event` each count 1, 2, 3... from each birth. A number at or
  below the last one is a replay (ignored, counted); a jump is a gap (applied, counted, and the
  device is asked to rebirth so the controller's view is rebuilt from a full birth).
- Data from a session the controller has no birth for (it restarted, or missed the birth)
  also triggers a rebirth request. Rebirth requests are rate-limited per device.
- Events are facts: a late event from the immediately previous session (resent by the MQTT
  client after a reconnect) is still accepted, once.

Identity (topic vs payload vs registry) is checked before this, in `check_identity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from protos.vigil.v1 import fleet_pb2

US = 1_000_000


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    GAP = "gap"  # accepted, but numbers were skipped
    REPLAY = "replay"  # seq at or below the last seen: ignored
    STALE = "stale"  # from a session that is not current: ignored
    NO_BIRTH = "no_birth"  # data for a session we have no birth for: applied, rebirth asked


class OfflineReason(StrEnum):
    CLEAN = "clean"
    WILL = "will"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class MonitorPolicy:
    # A device is offline (reason "timeout") after this many health intervals of silence.
    timeout_intervals: float = 3.0
    default_health_interval_s: float = 30.0
    min_timeout_s: float = 15.0
    rebirth_min_interval_s: float = 30.0
    # Timestamps of recent session starts kept, for the repeated-reconnects alert.
    connects_kept: int = 20
    # False when health is split over controller replicas (MQTT shared subscription): each
    # replica sees only some of a device's health numbers, so a jump is not a loss.
    health_gaps: bool = True


class DeviceRecord(NamedTuple):
    """What the controller knows about one device. Replaced, never mutated.

    A NamedTuple rather than a dataclass: `_replace` is several times faster than
    `dataclasses.replace`, and this runs for every message of a 20,000-device fleet.
    """

    device_id: str
    county: str
    site: str
    online: bool = False
    reason: str = ""  # why offline: clean | will | timeout
    session: int = 0
    session_has_birth: bool = False
    last_seen_us: int = 0
    changed_us: int = 0  # when `online` last flipped
    birth: fleet_pb2.Birth | None = None
    health: fleet_pb2.Health | None = None
    health_seq: int = 0
    event_seq: int = 0
    prev_session: int = 0
    prev_event_seq: int = 0
    gaps: int = 0
    replays: int = 0
    stale: int = 0
    flood_dropped: int = 0
    last_flood_us: int = 0
    last_rebirth_request_us: int = 0
    rebirth_requests: int = 0
    connects_us: tuple[int, ...] = ()
    clock_skew_s: float = 0.0
    health_interval_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RequestRebirth:
    device_id: str
    county: str
    site: str
    why: str


@dataclass(frozen=True, slots=True)
class RecordEvent:
    event: fleet_pb2.Event


Action = RequestRebirth | RecordEvent


@dataclass(frozen=True, slots=True)
class Outcome:
    record: DeviceRecord
    verdict: Verdict
    actions: tuple[Action, ...] = ()


def check_identity(
    topic_device: str,
    topic_county: str,
    topic_site: str,
    payload_device: str,
    registered: tuple[str, str] | None,
) -> str | None:
    """None when the message may be applied, else why not.

    `registered` is the device's (county, site) from the registry, None when unknown. The
    payload must name the device of the topic: a message that slipped through a misconfigured
    broker into another device's topic disagrees with its own payload and is ignored.
    """
    if registered is None:
        return "unknown_device"
    if payload_device != topic_device:
        return "identity_mismatch"
    if (topic_county, topic_site) != registered:
        return "wrong_site"
    return None


def timeout_s(record: DeviceRecord, policy: MonitorPolicy) -> float:
    interval = record.health_interval_s or policy.default_health_interval_s
    return max(policy.min_timeout_s, policy.timeout_intervals * interval)


def _new_session(r: DeviceRecord, session: int, now_us: int, policy: MonitorPolicy) -> DeviceRecord:
    """Start tracking `session`: fresh sequence numbers, remember the previous session."""
    connects = (*r.connects_us, now_us)[-policy.connects_kept :]
    return r._replace(
        prev_session=r.session,
        prev_event_seq=r.event_seq,
        session=session,
        session_has_birth=False,
        health_seq=0,
        event_seq=0,
        connects_us=connects,
    )


def _go_online(r: DeviceRecord, now_us: int) -> DeviceRecord:
    if r.online:
        return r._replace(last_seen_us=now_us)
    return r._replace(online=True, reason="", changed_us=now_us, last_seen_us=now_us)


def _maybe_rebirth(
    r: DeviceRecord, why: str, now_us: int, policy: MonitorPolicy
) -> tuple[DeviceRecord, tuple[Action, ...]]:
    if (
        r.last_rebirth_request_us
        and now_us - r.last_rebirth_request_us < policy.rebirth_min_interval_s * US
    ):
        return r, ()
    r = r._replace(last_rebirth_request_us=now_us, rebirth_requests=r.rebirth_requests + 1)
    return r, (RequestRebirth(r.device_id, r.county, r.site, why),)


def on_state(
    r: DeviceRecord, msg: fleet_pb2.DeviceState, now_us: int, policy: MonitorPolicy
) -> Outcome:
    if msg.online:
        if r.session and msg.session < r.session:
            return Outcome(r._replace(stale=r.stale + 1), Verdict.STALE)
        if msg.session != r.session:
            r = _new_session(r, msg.session, now_us, policy)
        return Outcome(_go_online(r, now_us), Verdict.ACCEPTED)
    # A Will or a clean goodbye: only the current session's counts.
    if msg.session != r.session or not r.online:
        return Outcome(r._replace(stale=r.stale + 1), Verdict.STALE)
    reason = msg.reason if msg.reason in (OfflineReason.CLEAN, OfflineReason.WILL) else "will"
    r = r._replace(online=False, reason=reason, changed_us=now_us, last_seen_us=now_us)
    return Outcome(r, Verdict.ACCEPTED)


def on_birth(r: DeviceRecord, msg: fleet_pb2.Birth, now_us: int, policy: MonitorPolicy) -> Outcome:
    if msg.session != r.session:
        r = _new_session(r, msg.session, now_us, policy)
    # A birth (first, or answering a rebirth request) restarts both sequences, as in Sparkplug.
    r = _go_online(r, now_us)._replace(
        birth=msg,
        session_has_birth=True,
        health_interval_s=msg.health_interval_s,
        health_seq=0,
        event_seq=0,
    )
    return Outcome(r, Verdict.ACCEPTED)


def _sequenced(
    r: DeviceRecord,
    session: int,
    seq: int,
    last: int,
    now_us: int,
    policy: MonitorPolicy,
    gaps: bool = True,
) -> tuple[DeviceRecord, Verdict, tuple[Action, ...]] | Outcome:
    """Shared seq/session logic for health and events; an Outcome means "stop here"."""
    if session != r.session:
        if r.session and session < r.session:
            return Outcome(r._replace(stale=r.stale + 1), Verdict.STALE)
        # A newer session without its birth (controller restarted or missed it): follow it.
        r = _new_session(r, session, now_us, policy)
        last = 0
    elif not r.online and r.reason in (OfflineReason.CLEAN, OfflineReason.WILL):
        # The session ended; anything after its death is late or replayed.
        return Outcome(r._replace(stale=r.stale + 1), Verdict.STALE)
    if seq <= last:
        return Outcome(r._replace(replays=r.replays + 1), Verdict.REPLAY)
    r = _go_online(r, now_us)
    actions: tuple[Action, ...] = ()
    verdict = Verdict.ACCEPTED
    if not r.session_has_birth:
        verdict = Verdict.NO_BIRTH
        r, actions = _maybe_rebirth(r, "no birth for this session", now_us, policy)
    elif gaps and seq > last + 1:
        verdict = Verdict.GAP
        r = r._replace(gaps=r.gaps + 1)
        r, actions = _maybe_rebirth(r, f"sequence gap {last} -> {seq}", now_us, policy)
    return r, verdict, actions


def on_health(
    r: DeviceRecord, msg: fleet_pb2.Health, now_us: int, policy: MonitorPolicy
) -> Outcome:
    skew = (msg.at_unix_us - now_us) / US if msg.at_unix_us else 0.0
    if (
        msg.session == r.session
        and (msg.seq == r.health_seq + 1 or (not policy.health_gaps and msg.seq > r.health_seq))
        and r.online
        and r.session_has_birth
    ):
        # The common case, in one step: it runs for every health report of the fleet.
        r = r._replace(health=msg, health_seq=msg.seq, clock_skew_s=skew, last_seen_us=now_us)
        return Outcome(r, Verdict.ACCEPTED)
    step = _sequenced(r, msg.session, msg.seq, r.health_seq, now_us, policy, policy.health_gaps)
    if isinstance(step, Outcome):
        return step
    r, verdict, actions = step
    r = r._replace(health=msg, health_seq=msg.seq, clock_skew_s=skew)
    return Outcome(r, verdict, actions)


def merge_shared_health(
    r: DeviceRecord, msg: fleet_pb2.Health, seen_us: int, skew_s: float
) -> DeviceRecord | None:
    """Fold in a health report another replica received (read from the shared table), or
    None when it adds nothing: another session, or not newer than what this replica has.

    A device silent here only because its health goes to other replicas is seen through
    these rows, so it does not time out; a device that said goodbye (Will, clean) stays
    offline: only its next state or birth, which every replica receives, brings it back.
    """
    if msg.session != r.session or msg.seq <= r.health_seq:
        return None
    if not r.online and r.reason != OfflineReason.TIMEOUT:
        return None
    r = r._replace(
        health=msg,
        health_seq=msg.seq,
        clock_skew_s=skew_s,
        last_seen_us=max(r.last_seen_us, seen_us),
    )
    if not r.online and seen_us > r.changed_us:  # received after it was timed out here
        r = r._replace(online=True, reason="", changed_us=seen_us)
    return r


def on_event(r: DeviceRecord, msg: fleet_pb2.Event, now_us: int, policy: MonitorPolicy) -> Outcome:
    if msg.session == r.session and msg.seq == r.event_seq + 1 and r.online and r.session_has_birth:
        r = r._replace(event_seq=msg.seq, last_seen_us=now_us)
        return Outcome(r, Verdict.ACCEPTED, (RecordEvent(msg),))
    if r.prev_session and msg.session == r.prev_session and msg.session != r.session:
        # Resent by the agent's MQTT client after a reconnect: a fact, accepted once.
        if msg.seq <= r.prev_event_seq:
            return Outcome(r._replace(replays=r.replays + 1), Verdict.REPLAY)
        r = r._replace(prev_event_seq=msg.seq, last_seen_us=now_us)
        return Outcome(r, Verdict.ACCEPTED, (RecordEvent(msg),))
    step = _sequenced(r, msg.session, msg.seq, r.event_seq, now_us, policy)
    if isinstance(step, Outcome):
        return step
    r, verdict, actions = step
    r = r._replace(event_seq=msg.seq)
    return Outcome(r, verdict, (RecordEvent(msg), *actions))


def expire(r: DeviceRecord, now_us: int, policy: MonitorPolicy) -> DeviceRecord:
    """Mark a silent online device offline with reason "timeout" (no Will ever arrived)."""
    if r.online and now_us - r.last_seen_us > timeout_s(r, policy) * US:
        return r._replace(online=False, reason=OfflineReason.TIMEOUT, changed_us=now_us)
    return r


def note_flood(r: DeviceRecord, now_us: int) -> DeviceRecord:
    """Count one message dropped by the per-device rate limiter."""
    return r._replace(flood_dropped=r.flood_dropped + 1, last_flood_us=now_us)


def on_message(r: DeviceRecord, m: object, now_us: int, policy: MonitorPolicy) -> Outcome:
    """The transition for any decoded device message (a Command on a device topic is not
    ours: STALE)."""
    if isinstance(m, fleet_pb2.Health):
        return on_health(r, m, now_us, policy)
    if isinstance(m, fleet_pb2.Event):
        return on_event(r, m, now_us, policy)
    if isinstance(m, fleet_pb2.Birth):
        return on_birth(r, m, now_us, policy)
    if isinstance(m, fleet_pb2.DeviceState):
        return on_state(r, m, now_us, policy)
    return Outcome(r, Verdict.STALE)
