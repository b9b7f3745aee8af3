"""Where one connection's (or file's) video timestamps go on disk (pure, no PyAV).

Three corrections add up, in stream ticks:
* the segmenter's re-base (`offset_us`), made exact: the first frame after a re-base lands
  exactly one frame after the last one written, since a tick off makes two frames collide;
* the lift: fixed per connection, so that nothing on disk is negative (an MP4 with B-frames
  starts its dts below zero, and MPEG-TS would wrap it to 2^33);
* the wobble (`wobble.py`): dts back on the cadence, pts whole frames after it.
"""

from __future__ import annotations

from fractions import Fraction

from .wobble import nudge, steady_pts


class VideoTimeline:
    """Not thread-safe: it belongs to one writer, reset for each connection or file."""

    __slots__ = (
        "num",
        "den",
        "offset_us",
        "_offset_tb",
        "lift_tb",
        "lift_us",
        "_prev_dts",
        "_nudge",
    )

    def __init__(self, time_base: Fraction) -> None:
        self.num = time_base.numerator * 1_000_000  # ticks -> µs: t * num // den
        self.den = time_base.denominator
        self.offset_us = 0  # the segmenter's re-base in force
        self._offset_tb = 0  # the same in ticks
        self.lift_tb: int | None = None  # None until the first frame
        self.lift_us = 0
        self._prev_dts: int | None = None  # the last dts placed, corrected
        self._nudge = 0

    def us(self, ticks: int) -> int:
        return ticks * self.num // self.den

    def ticks(self, us: int) -> int:
        return round(us * self.den / self.num)

    def place(
        self, pts: int, dts: int, duration: int, frame_us: int, offset_us: int
    ) -> tuple[int, int]:
        """The (pts, dts) to write for a frame with these raw timestamps (`duration` 0 if
        unknown: `frame_us`, the segmenter's frame interval, stands in)."""
        step = duration or self.ticks(frame_us)
        if offset_us != self.offset_us:
            self.offset_us = offset_us
            prev = self._prev_dts
            if prev is None:
                self._offset_tb = self.ticks(offset_us)
            else:
                self._offset_tb = prev + step - dts - (self.lift_tb or 0)
        if self.lift_tb is None:
            self.lift_tb = max(0, -dts)
            self.lift_us = self.us(self.lift_tb)
        shift = self._offset_tb + self.lift_tb
        self._nudge = nudge(self._prev_dts, dts + shift, step, self._nudge)
        shift += self._nudge
        dts += shift
        self._prev_dts = dts
        return steady_pts(pts + shift, dts, step), dts
