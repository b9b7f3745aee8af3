"""Taking the wobble out of a camera's frame timestamps (pure).

Why: RTSP timestamps of many cameras wobble by a few ticks of 90 kHz (FFmpeg re-anchors them
on each RTCP report; cameras round their own clocks). Players do not care, but two frames that
come a few ticks less than a frame apart can land on the same frame number when a tool maps
the stream onto its frame rate, and `ffmpeg -i seg.ts -f null -` then reports "non
monotonically increasing dts". Nudging each frame back onto the stream's own cadence by at
most `LIMIT_TICKS` (0.1 ms) fixes that without ever letting the video drift from its audio:
the nudge is bounded, so a camera whose clock really runs fast or slow shows through.
"""

from __future__ import annotations

WOBBLE_TICKS = 10  # a step this close to one frame is the same frame interval, wobbling
LIMIT_TICKS = 10  # the most a timestamp is ever moved


def nudge(prev_dts: int | None, dts: int, step: int, correction: int) -> int:
    """The correction to add to this frame's timestamps (and to carry to the next), given the
    previous frame's corrected dts, this frame's raw dts, one frame in ticks, and the
    correction so far."""
    if prev_dts is None or step <= 0:
        return correction
    short = prev_dts + step - dts  # how far this frame is from one frame after the last
    if abs(short) > WOBBLE_TICKS + LIMIT_TICKS:
        return correction  # a real change of pace (a dropped frame, a jump): left as it is
    return max(-LIMIT_TICKS, min(LIMIT_TICKS, short))
