"""Spotting a new sequence parameter set (H.264 or H.265) without decoding.

A camera that changes resolution or profile mid-stream sends a new SPS in front of the next
keyframe. Segments must not straddle that change (a player set up for one resolution chokes on
the next), so the segmenter cuts there. The bitstream reading lives in `edge_agent.sources.nal`;
this module keeps the name capture has always imported.
"""

from __future__ import annotations

from edge_agent.sources.nal import find_sps, is_annexb

__all__ = ["find_sps", "is_annexb"]
