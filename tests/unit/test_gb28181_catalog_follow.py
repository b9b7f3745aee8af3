"""Following a GB/T 28181 device's catalog: when it is asked again, and what recording does
with a channel the device reports OFF (pure rules, no I/O)."""

from __future__ import annotations

from controller.gb28181 import supervise
from controller.gb28181.devstate import Registration, afresh
from controller.gb28181.manscdp import OFF, ON, UNKNOWN

HERE = ("10.1.2.3", 5060)
HELD = Registration("call-1", HERE, until=1000.0)


def test_a_first_registration_is_afresh() -> None:
    assert afresh(None, "call-1", HERE, 10.0)


def test_a_refresh_of_a_live_registration_is_not_afresh() -> None:
    assert not afresh(HELD, "call-1", HERE, 999.9)


def test_a_restart_another_call_id_is_afresh() -> None:
    assert afresh(HELD, "call-2", HERE, 500.0)


def test_a_registration_after_the_last_lapsed_is_afresh_even_with_its_call_id() -> None:
    assert afresh(HELD, "call-1", HERE, 1000.0)
    assert afresh(HELD, "call-1", HERE, 5000.0)


def test_another_source_address_is_afresh() -> None:
    assert afresh(HELD, "call-1", ("10.1.2.3", 5061), 500.0)
    assert afresh(HELD, "call-1", ("10.9.9.9", 5060), 500.0)


def test_a_tcp_device_connecting_again_from_another_port_refreshes() -> None:
    """Every TCP connection has a new source port: a device whose connection broke connects
    again and refreshes with its Call-ID; its sessions must not end for that."""
    assert not afresh(HELD, "call-1", (HERE[0], 40123), 500.0, tcp=True)
    assert afresh(HELD, "call-1", ("10.9.9.9", 40123), 500.0, tcp=True)  # another host
    assert afresh(HELD, "call-2", (HERE[0], 40123), 500.0, tcp=True)  # restarted
    assert afresh(HELD, "call-1", (HERE[0], 40123), 1000.0, tcp=True)  # lapsed


def test_an_empty_call_id_never_matches_a_held_one_by_accident() -> None:
    assert afresh(HELD, "", HERE, 500.0)


def test_a_channel_reported_off_is_held_with_the_reason_the_console_gives() -> None:
    why = supervise.hold(OFF, live=False, catalog_wait=None, now=100.0)
    assert why == supervise.CATALOG_OFF_NOTE
    assert why is not None and "catalog_off" in why and "通道离线（设备目录报告 OFF）" in why


def test_a_channel_reported_on_or_unknown_is_invited() -> None:
    assert supervise.hold(ON, live=False, catalog_wait=None, now=100.0) is None
    assert supervise.hold(UNKNOWN, live=False, catalog_wait=None, now=100.0) is None


def test_a_viewer_is_not_held_back_by_a_reported_off() -> None:
    """A viewer asked: the INVITE goes, and the viewer is told what the device answers."""
    assert supervise.hold(OFF, live=True, catalog_wait=None, now=100.0) is None
    assert supervise.hold(ON, live=True, catalog_wait=99.0, now=100.0) is None


def test_recording_waits_briefly_for_a_fresh_registrations_catalog() -> None:
    asked = 100.0
    assert supervise.hold(ON, False, asked, asked) == supervise.WAIT_CATALOG
    end = asked + supervise.CATALOG_WAIT_S
    assert supervise.hold(ON, False, asked, end - 0.01) == supervise.WAIT_CATALOG
    assert supervise.hold(ON, False, asked, end) is None  # never answered: not waited for longer
    assert supervise.hold(OFF, False, asked, end) == supervise.CATALOG_OFF_NOTE


def test_a_catalog_wait_stamped_in_the_future_is_not_a_wait_forever() -> None:
    """A clock oddity (a stamp ahead of now) must not hold a channel indefinitely."""
    assert supervise.hold(ON, False, 500.0, 100.0) is None
