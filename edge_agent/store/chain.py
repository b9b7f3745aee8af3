"""Checking a camera's hash chain: a pure function over the links the index knows.

Each committed segment has a per-camera sequence number, its SHA-256 and the SHA-256 of the
camera's previous segment. A link is either a segment still buffered or an eviction record
(which keeps the evicted segment's hashes), so eviction never breaks verification: an evicted
segment is a known link, not a hole. A hole is a sequence number that is neither buffered nor
recorded as evicted — something vanished without a trace, which is exactly what must never
happen and what this reports.

`anchor_seq` is where verification starts: 1 for a complete history, higher once old,
already-reported eviction records were pruned (the link at the anchor is then trusted as is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChainLink:
    seq: int
    segment_id: str
    sha256: str
    prev_sha256: str
    evicted: bool


def verify_links(
    camera_id: str,
    links: Sequence[ChainLink],
    anchor_seq: int,
    head_seq: int,
    head_sha256: str,
) -> list[str]:
    """Problems with the chain of links anchor_seq..head_seq of one camera; [] when intact."""
    problems: list[str] = []
    by_seq: dict[int, ChainLink] = {}
    for link in sorted(links, key=lambda x: x.seq):
        if link.seq < anchor_seq:
            continue
        if link.seq in by_seq:
            problems.append(
                f"camera {camera_id}: seq {link.seq} claimed by both "
                f"{by_seq[link.seq].segment_id} and {link.segment_id}"
            )
            continue
        if link.seq > head_seq:
            problems.append(
                f"camera {camera_id}: {link.segment_id} has seq {link.seq} beyond head {head_seq}"
            )
            continue
        by_seq[link.seq] = link
    previous: ChainLink | None = None
    for seq in range(anchor_seq, head_seq + 1):
        current = by_seq.get(seq)
        if current is None:
            problems.append(
                f"camera {camera_id}: seq {seq} is neither buffered nor recorded as evicted"
            )
            previous = None
            continue
        if seq == 1 and current.prev_sha256 != "":
            problems.append(
                f"camera {camera_id}: first segment {current.segment_id} has a previous hash"
            )
        elif previous is not None and current.prev_sha256 != previous.sha256:
            problems.append(
                f"camera {camera_id}: {current.segment_id} points to {current.prev_sha256[:16]}, "
                f"but the previous segment {previous.segment_id} is {previous.sha256[:16]}"
            )
        previous = current
    if head_seq >= anchor_seq:
        last = by_seq.get(head_seq)
        if last is not None and last.sha256 != head_sha256:
            problems.append(
                f"camera {camera_id}: chain head {head_sha256[:16]} is not the last "
                f"segment {last.segment_id} ({last.sha256[:16]})"
            )
    return problems
