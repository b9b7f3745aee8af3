"""Recording supervision decisions (controller/gb28181/supervise.py): which channels record,
when a session is dead and why, and the backoff before the next INVITE."""

from __future__ import annotations

import pytest

from controller.gb28181 import supervise
from controller.gb28181.supervise import SessionFacts, Timing

NVR = "62120200001110000001"
CH1, CH2 = "62120200001310000001", "62120200001310000002"
T = Timing(
    rtp_timeout_s=10.0, first_packet_s=15.0, reinvite_min_s=2.0, reinvite_max_s=60.0, stable_s=60.0
)


def facts(**kw: object) -> SessionFacts:
    base: dict[str, object] = dict(
        invited_at=100.0, last_packet_at=None, epoch=3, device_epoch=3, remote_bye=False
    )
    base.update(kw)
    return SessionFacts(**base)  # type: ignore[arg-type]


def test_which_channels_record() -> None:
    assert not supervise.wanted([], NVR, CH1)
    assert supervise.wanted(["*"], NVR, CH1)
    assert supervise.wanted([CH1], NVR, CH1) and not supervise.wanted([CH1], NVR, CH2)
    assert supervise.wanted([NVR], NVR, CH2)  # a device's code takes all its channels
    assert supervise.wanted(["6212020000131*"], NVR, CH2)
    assert not supervise.wanted(["6212030000*"], NVR, CH1)


def test_a_live_session_is_kept() -> None:
    assert supervise.drop_reason(facts(), 105.0, T) is None  # waiting for its first packet
    assert supervise.drop_reason(facts(last_packet_at=150.0), 159.9, T) is None


def test_silence_ends_a_session_counted_from_the_last_packet_or_the_invite() -> None:
    assert supervise.drop_reason(facts(), 114.9, T) is None  # the first packet may take longer
    assert supervise.drop_reason(facts(), 115.0, T) == "gb: no RTP within 15 s of the INVITE"
    got = supervise.drop_reason(facts(last_packet_at=150.0), 160.0, T)
    assert got == "gb: RTP silent for 10 s"


def test_bye_restart_and_unregistration_end_a_session_before_any_timeout() -> None:
    assert supervise.drop_reason(facts(remote_bye=True), 100.1, T) == "gb: device sent BYE"
    assert supervise.drop_reason(facts(device_epoch=4), 100.1, T) == (
        "gb: device registered again (restarted)"
    )
    assert supervise.drop_reason(facts(device_epoch=None), 100.1, T) == "gb: device unregistered"


@pytest.mark.parametrize(
    ("attempts", "wait"), [(0, 0.0), (1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (99, 60.0)]
)
def test_backoff_doubles_up_to_the_cap(attempts: int, wait: float) -> None:
    assert supervise.backoff_s(attempts, T) == wait


def test_a_stable_session_starts_the_count_over_a_flapping_one_backs_off() -> None:
    assert supervise.after_drop(5, 3600.0, 1000.0, T) == supervise.Retry(1, 1002.0)
    assert supervise.after_drop(3, 5.0, 1000.0, T) == supervise.Retry(4, 1016.0)
    assert supervise.after_failure(0, 1000.0, T) == supervise.Retry(1, 1002.0)
    assert supervise.after_failure(6, 1000.0, T) == supervise.Retry(7, 1060.0)


def test_how_a_channels_media_comes_in() -> None:
    assert supervise.media_mode([], [], NVR, CH1) == supervise.UDP
    assert supervise.media_mode([NVR], [], NVR, CH1) == supervise.TCP_PASSIVE
    assert supervise.media_mode([NVR], [CH1], NVR, CH1) == supervise.TCP_ACTIVE  # listens only
    assert supervise.media_mode([NVR], [CH1], NVR, CH2) == supervise.TCP_PASSIVE
