"""Where to cut a camera's packet stream into segments, and what wall-clock time each one covers.

This package is the pure core of capture: no I/O, no clock reads, no PyAV. The capture shell
(`edge_agent.capture.writer`) turns each demuxed packet into a `PacketMeta`, calls `step`, and
does what the returned `Decision` says (write the packet, close the segment and commit it, open
a new one, record a gap).

The rules, and why:

* A segment starts on a keyframe, always: a segment that starts elsewhere does not decode on
  its own. Packets before the first keyframe of a connection are dropped.
* The cut goes at the first keyframe at or after the target duration, less half a frame
  (timestamps that wobble by a tick must not miss the cut and double a segment). Never
  decoding means we cannot cut anywhere else, so a segment is at most one GOP longer than the
  target.
* Wall-clock time comes from one anchor per connection (when the first packet arrived, or a
  recording file's start time) plus the stream's own timestamps. Arrival times jitter;
  timestamps don't, so consecutive segments of one connection tile time exactly.
* A live source's first packets come in a burst (FFmpeg reads ahead while probing; a backlog
  queued while connecting), so the first packet's arrival is late. A packet never arrives before
  it was sent, so `arrival - (pts - pts0)` is an upper bound of the true anchor that gets tight
  once packets flow live: the core keeps the smallest value, keeps the first segment open until
  that value has held for `settle_us`, and only then fixes its start (and the gap before it).
* A timestamp that goes backwards, or forwards by more than `forward_jump_us`, is a
  discontinuity: the segment ends there, the next one is flagged DISCONTINUITY, the timeline is
  re-anchored, and any time missing in between is reported as a gap. Unless the video plainly
  went on (see `rebased`): then the timestamps are shifted back in line and nothing is cut.
  A new SPS (resolution or profile change) starts a new DISCONTINUITY segment, with no gap.
* Segments of one camera never overlap: a segment that would start before the previous one
  ended is moved to start where it ended (the anchor shifts, the durations stay true).
* A broken GOP (a frame missing exactly where the GOP cadence puts the next keyframe: the
  keyframe was lost) ends the segment there; the frames after it cannot decode, so they are
  dropped until the next keyframe and that stretch is reported as a gap.
* A segment with no keyframe for `max_us` is closed likewise: it bounds segments of a stream
  that stops sending keyframes altogether.
"""

from edge_agent.segmenter.cut import abandon, begin, finish, step
from edge_agent.segmenter.state import (
    US,
    Action,
    ClosedSegment,
    CutPolicy,
    CutState,
    Decision,
    GapSpan,
    OpenSegment,
    PacketMeta,
    Timeline,
)

__all__ = [
    "US",
    "Action",
    "ClosedSegment",
    "CutPolicy",
    "CutState",
    "Decision",
    "GapSpan",
    "OpenSegment",
    "PacketMeta",
    "Timeline",
    "abandon",
    "begin",
    "finish",
    "step",
]
