"""The controller's device-state transitions: sessions, fencing, sequences, rebirth, timeout."""

from __future__ import annotations

from controller.fleet import monitor as mo
from protos.vigil.v1 import fleet_pb2

T0 = 1_800_000_000_000_000
S = 1_000_000
P = mo.MonitorPolicy(rebirth_min_interval_s=30.0, default_health_interval_s=10.0)


def rec() -> mo.DeviceRecord:
    return mo.DeviceRecord("nvr-1", "wudu", "v001")


def state(online: bool, session: int, reason: str = "") -> fleet_pb2.DeviceState:
    return fleet_pb2.DeviceState(device_id="nvr-1", online=online, session=session, reason=reason)


def birth(session: int, interval: float = 10.0) -> fleet_pb2.Birth:
    return fleet_pb2.Birth(device_id="nvr-1", session=session, health_interval_s=interval)


def health(session: int, seq: int, at: int = T0) -> fleet_pb2.Health:
    return fleet_pb2.Health(device_id="nvr-1", session=session, seq=seq, at_unix_us=at)


def event(session: int, seq: int) -> fleet_pb2.Event:
    return fleet_pb2.Event(device_id="nvr-1", session=session, seq=seq)


def online(session: int = 5) -> mo.DeviceRecord:
    r = mo.on_state(rec(), state(True, session), T0, P).record
    return mo.on_birth(r, birth(session), T0, P).record


def test_birth_brings_device_online_with_session_and_interval() -> None:
    r = online(5)
    assert r.online and r.session == 5 and r.session_has_birth
    assert r.health_interval_s == 10.0
    assert r.connects_us == (T0,)


def test_will_of_current_session_marks_offline_with_reason() -> None:
    out = mo.on_state(online(5), state(False, 5, "will"), T0 + S, P)
    assert out.verdict is mo.Verdict.ACCEPTED
    assert not out.record.online and out.record.reason == "will"
    assert out.record.changed_us == T0 + S


def test_clean_goodbye_reason_kept_and_unknown_reason_means_will() -> None:
    assert mo.on_state(online(5), state(False, 5, "clean"), T0, P).record.reason == "clean"
    assert mo.on_state(online(5), state(False, 5, "bogus"), T0, P).record.reason == "will"


def test_late_will_from_old_session_is_fenced() -> None:
    r = mo.on_birth(online(5), birth(6), T0 + S, P).record  # reconnected: session 6
    out = mo.on_state(r, state(False, 5, "will"), T0 + 2 * S, P)
    assert out.verdict is mo.Verdict.STALE
    assert out.record.online and out.record.session == 6 and out.record.stale == 1


def test_stale_online_state_from_older_session_ignored() -> None:
    out = mo.on_state(online(7), state(True, 6), T0, P)
    assert out.verdict is mo.Verdict.STALE and out.record.session == 7


def test_health_in_order_accepted_and_stored() -> None:
    r = online()
    for seq in (1, 2, 3):
        out = mo.on_health(r, health(5, seq), T0 + seq * S, P)
        assert out.verdict is mo.Verdict.ACCEPTED and out.actions == ()
        r = out.record
    assert r.health_seq == 3 and r.health is not None and r.last_seen_us == T0 + 3 * S


def test_replayed_and_out_of_order_sequence_ignored() -> None:
    r = mo.on_health(online(), health(5, 1), T0, P).record
    r = mo.on_health(r, health(5, 2), T0, P).record
    for seq in (2, 1):
        out = mo.on_health(r, health(5, seq, at=T0 + 99 * S), T0 + S, P)
        assert out.verdict is mo.Verdict.REPLAY
        assert out.record.health is r.health  # unchanged
        r = out.record
    assert r.replays == 2


def test_gap_applies_counts_and_requests_one_rebirth_within_interval() -> None:
    r = mo.on_health(online(), health(5, 1), T0, P).record
    out = mo.on_health(r, health(5, 4), T0 + S, P)
    assert out.verdict is mo.Verdict.GAP and out.record.gaps == 1 and out.record.health_seq == 4
    assert out.actions == (mo.RequestRebirth("nvr-1", "wudu", "v001", "sequence gap 1 -> 4"),)
    again = mo.on_health(out.record, health(5, 9), T0 + 2 * S, P)
    assert again.verdict is mo.Verdict.GAP and again.actions == ()  # rate-limited
    later = mo.on_health(again.record, health(5, 20), T0 + 40 * S, P)
    assert len(later.actions) == 1 and later.record.rebirth_requests == 2


def test_data_for_unknown_session_requests_rebirth() -> None:
    out = mo.on_health(rec(), health(9, 17), T0, P)  # controller restarted: no birth seen
    assert out.verdict is mo.Verdict.NO_BIRTH
    assert out.record.online and out.record.session == 9
    assert isinstance(out.actions[0], mo.RequestRebirth)


def test_health_from_older_session_is_stale() -> None:
    out = mo.on_health(online(5), health(4, 100), T0, P)
    assert out.verdict is mo.Verdict.STALE and out.record.health is None


def test_health_after_will_is_stale_but_after_timeout_revives() -> None:
    dead = mo.on_state(online(5), state(False, 5, "will"), T0, P).record
    assert mo.on_health(dead, health(5, 1), T0, P).verdict is mo.Verdict.STALE
    timed_out = mo.expire(online(5), T0 + 31 * S, P)
    assert not timed_out.online and timed_out.reason == "timeout"
    back = mo.on_health(timed_out, health(5, 1), T0 + 32 * S, P)
    assert back.verdict is mo.Verdict.ACCEPTED and back.record.online


def test_timeout_scales_with_health_interval() -> None:
    r = online(5)  # interval 10 s, 3 intervals, min 15 s -> 30 s
    assert mo.expire(r, T0 + 29 * S, P) is r
    assert mo.expire(r, T0 + 31 * S, P).reason == "timeout"
    slow = mo.on_birth(r, birth(5, interval=60.0), T0, P).record
    assert mo.expire(slow, T0 + 100 * S, P).online


def test_events_sequence_separately_and_are_recorded() -> None:
    r = mo.on_health(online(), health(5, 1), T0, P).record
    out = mo.on_event(r, event(5, 1), T0, P)
    assert out.verdict is mo.Verdict.ACCEPTED and out.actions == (mo.RecordEvent(event(5, 1)),)
    assert mo.on_event(out.record, event(5, 1), T0, P).verdict is mo.Verdict.REPLAY


def test_late_event_from_previous_session_accepted_once() -> None:
    r = mo.on_event(online(5), event(5, 1), T0, P).record
    r = mo.on_birth(r, birth(6), T0 + S, P).record
    late = mo.on_event(r, event(5, 2), T0 + S, P)
    assert late.verdict is mo.Verdict.ACCEPTED and late.actions
    dup = mo.on_event(late.record, event(5, 2), T0 + S, P)
    assert dup.verdict is mo.Verdict.REPLAY and dup.actions == ()


def test_new_session_restarts_sequences_and_counts_connects() -> None:
    r = mo.on_health(online(5), health(5, 40), T0, P).record
    r = mo.on_state(r, state(True, 6), T0 + S, P).record
    r = mo.on_birth(r, birth(6), T0 + S, P).record
    assert r.health_seq == 0 and len(r.connects_us) == 2
    assert mo.on_health(r, health(6, 1), T0 + 2 * S, P).verdict is mo.Verdict.ACCEPTED


def test_clock_skew_measured_from_health_timestamp() -> None:
    out = mo.on_health(online(), health(5, 1, at=T0 - 45 * S), T0, P)
    assert out.record.clock_skew_s == -45.0


def test_identity_checks() -> None:
    site = ("wudu", "v001")
    assert mo.check_identity("a", "wudu", "v001", "a", site) is None
    assert mo.check_identity("a", "wudu", "v001", "a", None) == "unknown_device"
    assert mo.check_identity("a", "wudu", "v001", "b", site) == "identity_mismatch"
    assert mo.check_identity("a", "wen", "v001", "a", site) == "wrong_site"


def test_flood_noted() -> None:
    r = mo.note_flood(mo.note_flood(rec(), T0), T0 + S)
    assert r.flood_dropped == 2 and r.last_flood_us == T0 + S


def test_birth_restarts_sequences_within_a_session() -> None:
    r = mo.on_health(online(5), health(5, 1), T0, P).record
    r = mo.on_event(r, event(5, 1), T0, P).record
    r = mo.on_birth(r, birth(5), T0 + S, P).record  # answering a rebirth request
    assert (r.health_seq, r.event_seq, r.session, len(r.connects_us)) == (0, 0, 5, 1)
    assert mo.on_health(r, health(5, 1), T0 + S, P).verdict is mo.Verdict.ACCEPTED


def test_fast_paths_match_general_rules() -> None:
    r = online(5)
    ok = mo.on_event(r, event(5, 1), T0 + S, P)
    assert ok.verdict is mo.Verdict.ACCEPTED and ok.record.last_seen_us == T0 + S
    gap = mo.on_event(ok.record, event(5, 5), T0 + S, P)
    assert gap.verdict is mo.Verdict.GAP and gap.record.gaps == 1 and len(gap.actions) == 2
