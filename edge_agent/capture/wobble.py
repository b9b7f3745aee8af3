"""Taking the wobble out of a camera's frame timestamps (pure).

Why: RTSP timestamps of many cameras wobble by a few ticks of 90 kHz (FFmpeg re-anchors them
on each RTCP report; cameras round their own clocks). Players do not care, but two frames that
come a few ticks less than a frame apart can land on the same frame number when a tool maps
the stream onto its frame rate, and `ffmpeg -i seg.ts -f null -` then reports "non
monotonically increasing dts". Nudging each frame back onto the stream's own cadence by at
most `LIMIT_TICKS` (0.1 ms) fixes that without ever letting the video drift from its audio:
the nudge is bounded, so a camera whose clock really runs fast or slow shows through.

With B-frames the dts alone is not enough: FFmpeg derives a B-frame stream's dts from the
pts of an *earlier* frame (RTP carries only pts), so the nudge that puts a packet's dts on the
cadence moves its pts by another frame's wobble, and its own wobble stays. `steady_pts` puts
the pts a whole number of frames after the (steady) dts when it is that within the wobble, so
frames are steady in presentation order too, which is the order tools map onto frame numbers.
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


def steady_pts(pts: int, dts: int, step: int) -> int:
    """This frame's pts, a whole number of frames after its dts if it is that within the
    wobble (a B-frame stream's reordering delay is whole frames); otherwise as it is."""
    lead = pts - dts
    if step <= 0 or lead < 0:
        return pts
    frames = (lead + step // 2) // step
    if abs(lead - frames * step) > WOBBLE_TICKS:
        return pts
    return dts + frames * step
