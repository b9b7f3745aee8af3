"""Fair shares of ingest between devices, pure: who gets an upload slot, whose staged
partial uploads go, which stalled streams are cancelled.

Why: the controller has one pool of upload slots (each holds a handler thread) and one
staging disk. Without shares, one device that opens many streams and stalls them (a broken
NVR or a hostile one, past mutual TLS all the same) holds every slot until the idle timeout
and every other device's uploads fail. With them a noisy device can only slow itself:

- a device holds at most `per_device` slots at once;
- the last `reserve` free slots go only to devices holding none, so a device with nothing in
  flight gets a slot even while others are busy;
- when the pool is short (free slots at or below the reserve, or a device was just refused),
  streams silent for `stall_s` are cancelled, not only those silent for the idle timeout;
- each device's staged bytes (partial uploads kept for resume) stay within its budget: to
  admit a new upload, that device's own oldest inactive partials are discarded first.

Everything here takes plain data and returns a decision; slots.py and service.py act on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shares:
    """The limits (from [ingest] in controller.toml)."""

    pool: int  # upload slots of the whole controller
    per_device: int = 4  # most concurrent uploads of one device
    reserve: int = 2  # free slots kept for devices with nothing in flight
    stall_s: float = 15.0  # silence that gets a stream cancelled when the pool is short
    staging_bytes: int = 1024 * 1024 * 1024  # staged bytes per device
    staging_entries: int = 32  # staged partial uploads per device

    @property
    def effective_reserve(self) -> int:
        """A small pool (a test, a tiny site) keeps no reserve: at most a quarter of it."""
        return min(self.reserve, self.pool // 4)


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # a sentence for the device
    pool_short: bool  # the pool (not the device's own share) is used up


def admit(shares: Shares, device_id: str, in_flight: Mapping[str, int]) -> Refusal | None:
    """None to admit one more upload of `device_id`, else why not.

    `in_flight`: uploads currently holding a slot, per device.
    """
    total = sum(in_flight.values())
    held = in_flight.get(device_id, 0)
    if total >= shares.pool:
        return Refusal(f"too many concurrent uploads (limit {shares.pool}); retry later", True)
    if held >= shares.per_device:
        return Refusal(
            f"too many concurrent uploads from device {device_id} ({held}, limit "
            f"{shares.per_device} per device); retry later",
            False,
        )
    free = shares.pool - total
    if held > 0 and free <= shares.effective_reserve:
        return Refusal(
            f"too many concurrent uploads: the last {free} slot(s) are kept for other "
            f"devices and device {device_id} has {held} in flight; retry later",
            True,
        )
    return None


def under_pressure(shares: Shares, in_use: int, refused_recently: bool) -> bool:
    """Whether stalled streams should be cancelled early (see the module doc)."""
    return refused_recently or shares.pool - in_use <= shares.effective_reserve


@dataclass(frozen=True, slots=True)
class Stream:
    """An upload stream holding a slot: its token, device and seconds since its last data."""

    token: int
    device_id: str
    idle_s: float


def to_reap(shares: Shares, streams: Sequence[Stream], idle_s: float, pressure: bool) -> list[int]:
    """Tokens of streams to cancel: silent past the idle timeout, or past `stall_s` when
    the pool is short."""
    limit = min(idle_s, shares.stall_s) if pressure else idle_s
    return [s.token for s in streams if s.idle_s > limit]


@dataclass(frozen=True, slots=True)
class Staged:
    """One staged partial upload of a device: its id, bytes on disk, age, and whether a
    stream is writing it now (never discarded then)."""

    segment_id: str
    size: int
    mtime: float
    active: bool


@dataclass(frozen=True, slots=True)
class StagingPlan:
    discard: tuple[str, ...]  # this device's partials to delete, oldest first
    refusal: str | None  # set: the upload cannot be staged now (its own streams fill it)


def plan_staging(
    shares: Shares, staged: Sequence[Staged], segment_id: str, size_bytes: int
) -> StagingPlan:
    """Make room in one device's staging for `segment_id` (declared `size_bytes`).

    The upload's own partial (a resume) counts as its full declared size; others count what
    they hold on disk. The oldest inactive partials go first until bytes and entries fit.
    """
    others = [s for s in staged if s.segment_id != segment_id]
    used = sum(s.size for s in others) + size_bytes
    entries = len(others) + 1
    discard: list[str] = []
    for s in sorted((s for s in others if not s.active), key=lambda s: (s.mtime, s.segment_id)):
        if used <= shares.staging_bytes and entries <= shares.staging_entries:
            break
        discard.append(s.segment_id)
        used -= s.size
        entries -= 1
    if used > shares.staging_bytes or entries > shares.staging_entries:
        return StagingPlan(
            (),
            f"staging for this device is full ({shares.staging_bytes} bytes, "
            f"{shares.staging_entries} uploads) with uploads in flight; retry later",
        )
    return StagingPlan(tuple(discard), None)
