"""Loss facts from an agent's eviction event, one or a batch, each checked on its own (pure).

After a long outage an agent has hundreds of unsent evictions to report; one message each
would exceed the controller's per-device rate limit (`ratelimit.py`) and the extras would only
come back on the next resend. So one `KIND_UNSENT_EVICTED` event may carry up to
`MAX_LOSSES_PER_EVENT` facts (`Event.losses`); each is stored and confirmed by its own fact
id (`receipts.py`), so a bad fact costs only itself:

- a batch over the bound is refused whole (nothing stored, nothing confirmed: the agent's
  own bound is lower, so only a broken or hostile sender gets here);
- a fact with no or an over-long fact id, a bad camera id, a reversed, negative or
  over-long range or negative bytes is refused and not confirmed;
- a fact naming a camera the device did not announce in its birth (when its birth lists
  cameras) is *unannounced*: the camera may have been taken out of the agent's config while
  its buffer still held unsent segments of it. It is kept only if the catalog registers the
  camera to this device (it owned it: the loss is real); otherwise dropped with its reason,
  so a device cannot put losses on another's camera (the history writer decides, by the
  catalog, in the write's transaction; either way the agent is told, so it stops resending);
- the same fact id twice in one batch is stored once.

The single-fact form (the event's own fields) is read as before, for agents that send it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from controller.catalog.history_models import LossEventRow
from protos.vigil.v1 import fleet_pb2

MAX_LOSSES_PER_EVENT = 64
MAX_FACT_ID = 128
MAX_LOSS_US = 86_400 * 1_000_000  # one evicted segment never spans more than a day
_CAMERA_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
REASON = "buffer_full"


@dataclass(slots=True)
class LossFacts:
    """What an eviction event yields: rows to store and (fact id, why) of those refused."""

    rows: list[LossEventRow] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    # Well-formed facts on cameras the device's birth did not list (kept if it owns them).
    unannounced: list[LossEventRow] = field(default_factory=list)


def _why_not(fact: fleet_pb2.LossFact) -> str:
    if not 0 < len(fact.fact_id) <= MAX_FACT_ID:
        return f"fact id must be 1-{MAX_FACT_ID} characters"
    if not _CAMERA_ID.fullmatch(fact.camera_id):
        return f"invalid camera id {fact.camera_id[:80]!r}"
    start, end = fact.range.start_unix_us, fact.range.end_unix_us
    if start <= 0 or end < start or end - start > MAX_LOSS_US:
        return f"range [{start}, {end}) is reversed, negative or longer than a day"
    if fact.bytes < 0:
        return f"negative size {fact.bytes}"
    return ""


def batch_facts(ev: fleet_pb2.Event, now_us: int, cameras: Collection[str] = ()) -> LossFacts:
    """The facts of a batched eviction event (`ev.losses`); `cameras`: those the device's
    birth announced (empty: not known, not checked)."""
    out = LossFacts()
    if len(ev.losses) > MAX_LOSSES_PER_EVENT:
        why = f"batch of {len(ev.losses)} losses > {MAX_LOSSES_PER_EVENT}"
        out.refused = [(f.fact_id[:MAX_FACT_ID], why) for f in ev.losses]
        return out
    seen: set[str] = set()
    for fact in ev.losses:
        why = _why_not(fact)
        if why:
            out.refused.append((fact.fact_id[:MAX_FACT_ID], why))
            continue
        if fact.fact_id in seen:
            continue
        seen.add(fact.fact_id)
        into = out.unannounced if cameras and fact.camera_id not in cameras else out.rows
        into.append(
            LossEventRow(
                device_id=ev.device_id,
                camera_id=fact.camera_id,
                session=ev.session,
                seq=ev.seq,
                fact_id=fact.fact_id,
                start_us=fact.range.start_unix_us,
                end_us=fact.range.end_unix_us,
                size_bytes=fact.bytes,
                reason=REASON,
                detail=f"segment {fact.fact_id} evicted before upload",
                at_us=fact.at_unix_us,
                received_us=now_us,
            )
        )
    return out


def single_fact(ev: fleet_pb2.Event, now_us: int, cameras: Collection[str] = ()) -> LossFacts:
    """The one fact of an unbatched eviction event (its own fields), as agents sent before
    batches; one on a camera the device's birth did not announce is unannounced, as a
    batch's."""
    row = LossEventRow(
        device_id=ev.device_id,
        camera_id=ev.camera_id,
        session=ev.session,
        seq=ev.seq,
        fact_id=ev.fact_id[:MAX_FACT_ID],
        start_us=ev.range.start_unix_us,
        end_us=max(ev.range.end_unix_us, ev.range.start_unix_us),
        size_bytes=ev.bytes,
        reason=REASON,
        detail=ev.detail[:1024],
        at_us=ev.at_unix_us,
        received_us=now_us,
    )
    if cameras and ev.camera_id not in cameras:
        return LossFacts(unannounced=[row])
    return LossFacts(rows=[row])


def loss_facts(ev: fleet_pb2.Event, now_us: int, cameras: Collection[str] = ()) -> LossFacts:
    """The losses an unsent-eviction event reports, batched or single."""
    if len(ev.losses):
        return batch_facts(ev, now_us, cameras)
    return single_fact(ev, now_us, cameras)
