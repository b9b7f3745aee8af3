"""The camera emulator's wall-clock SEI (glass-to-glass latency): where it goes in an access
unit, that it reads back, and that it never forms a start code inside its payload."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vigil_camsim import core

SPS = b"\x00\x00\x00\x01\x67\x42\x00\x1e\xab"
PPS = b"\x00\x00\x00\x01\x68\xce\x38\x80"
IDR = b"\x00\x00\x01\x65\x88\x84\x00\x10"
SLICE = b"\x00\x00\x00\x01\x41\x9a\x22"
VPS265 = b"\x00\x00\x00\x01\x40\x01\x0c"
IDR265 = b"\x00\x00\x00\x01\x26\x01\xaf"


def test_the_sei_goes_after_parameter_sets_and_before_the_first_slice() -> None:
    au = SPS + PPS + IDR
    out = core.with_wallclock(au, "h264", 1_767_000_000_123_456)
    sei = core.wallclock_sei("h264", 1_767_000_000_123_456)
    assert out == SPS + PPS + sei + IDR
    assert core.read_wallclock(out) == [1_767_000_000_123_456]
    kinds = [out[s] & 0x1F for s, _ in core.nal_spans(out)]
    assert kinds == [7, 8, 6, 5]


def test_a_delta_frame_and_h265() -> None:
    assert core.with_wallclock(SLICE, "h264", 5).startswith(core.wallclock_sei("h264", 5))
    out = core.with_wallclock(VPS265 + IDR265, "h265", 7)
    kinds = [(out[s] >> 1) & 0x3F for s, _ in core.nal_spans(out)]
    assert kinds == [32, 39, 19]
    assert core.read_wallclock(out + out) == [7, 7]


def test_other_codecs_are_left_alone() -> None:
    assert core.with_wallclock(b"\xff\xd8jpeg", "mjpeg", 1) == b"\xff\xd8jpeg"


@given(st.integers(min_value=0, max_value=10**16 - 1))
def test_the_payload_needs_no_emulation_prevention(wall_us: int) -> None:
    sei = core.wallclock_sei("h264", wall_us)
    body = sei[4:]
    assert b"\x00\x00" not in body
    assert core.read_wallclock(sei) == [wall_us]
