"""Agent capture: one worker thread per camera feeding the segmenter into the buffer.

Layout: `writer` (the segmenter's PyAV/buffer shell), with `timeline` (where timestamps go
on disk, pure), `segfile` (one segment file being written), `record` (segments and gaps
committed to the buffer) and `audio_lane`; `worker` (thread, status, events, the RTSP
reconnect loop), `folder_worker` (NVR and handheld folders), `manager` (all cameras),
`status` (live figures). The cut rules themselves are pure, in `edge_agent.segmenter`.
"""

from edge_agent.capture.manager import CaptureManager
from edge_agent.capture.worker import CaptureSettings, last_covered_us
from edge_agent.capture.writer import SegmentSink, SegmentWriter

__all__ = ["CaptureManager", "CaptureSettings", "SegmentSink", "SegmentWriter", "last_covered_us"]
