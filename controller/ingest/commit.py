"""Committing a verified upload: the conflict check, the chain, the store, the catalog row.

The order is what makes it crash-safe and idempotent (service.py tells the whole story):
check the id is not committed (else "already", or a conflict recorded as possible
tampering) -> judge the chain -> hand the staged file to the store, durable there -> the
catalog row -> the flag history, or clearing the gap flag of a later segment this one
proves -> delete the staging.

Two things spare the catalog work on every segment (caches.py): the camera's latest
committed segment stands in for the chain queries when this controller is the catalog's
only segment writer, and on SQLite segment writes queue on a lock here, because SQLite's
busy handler *sleeps* (1, 2, 5, 10... ms) when writers collide, which would stall uploads
far longer than the few hundred microseconds each write takes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from controller.catalog import (
    CameraRow,
    Catalog,
    CatalogError,
    CatalogUnavailableError,
    DuplicateSegmentError,
    SegmentMediaRow,
    SegmentRow,
)
from controller.clock import Clock
from controller.ingest.caches import ChainTips, ProbeMemo
from controller.ingest.group import GroupCommit
from controller.ingest.rules import (
    ChainVerdict,
    Code,
    Header,
    IngestError,
    Neighbour,
    decide_chain,
)
from controller.ingest.staging import Staging
from controller.media.probe import PROBE_BYTES, MediaInfo, probe_file
from controller.storage import ObjectStore, StorageError, object_key
from controller.storage.base import put_owned_file

log = logging.getLogger("vigil.ingest")


@dataclass(frozen=True, slots=True)
class Committed:
    """What the agent is told after a successful upload."""

    segment_id: str
    already: bool  # True: it was committed before with the same SHA-256 (nothing changed)
    sha256: str
    chain_ok: bool
    object_key: str
    # True: verified and held durably by the city (the commit queue), committed to the
    # store as soon as it answers; the agent may treat it as uploaded (OUTCOME_ACCEPTED).
    queued: bool = False


def unavailable(what: str, exc: Exception) -> IngestError:
    return IngestError(Code.UNAVAILABLE, f"{what} failed, retry later: {exc}")


def _neighbour_of(row: SegmentRow) -> Neighbour:
    return Neighbour(
        row.segment_id, row.start_us, row.end_us, row.sha256, row.prev_sha256, row.flag
    )


def _neighbour(row: SegmentRow | None) -> Neighbour | None:
    return None if row is None else _neighbour_of(row)


Probe = Callable[[Path], MediaInfo]


def media_row(header: Header, info: MediaInfo) -> SegmentMediaRow:
    """The catalog's media row for a probed segment (empty facts when the probe failed)."""
    return SegmentMediaRow(
        segment_id=header.segment_id,
        camera_id=header.camera_id,
        start_us=header.start_us,
        video_codec=info.video_codec[:32],
        video_profile=info.video_profile[:64],
        width=info.width,
        height=info.height,
        frame_rate=info.frame_rate,
        audio_codec=info.audio_codec[:32],
        audio_sample_rate=info.audio_sample_rate,
        audio_channels=info.audio_channels,
        probe_error=info.error[:512],
        probe_us=info.probe_us,
    )


class Committer:
    """Thread-safe; `exclusive_writer`: this controller alone commits segments (see top).
    `probe` reads a staged segment's media facts from its container header before the file
    goes to the store (the store may adopt, i.e. move, the file); it never raises. With
    `memo`, the file's head is read and the camera's last facts reused when its stream
    parameters are unchanged (caches.py); `probe` only runs when the head cannot be read."""

    def __init__(
        self,
        catalog: Catalog,
        store: ObjectStore,
        staging: Staging,
        clock: Clock,
        exclusive_writer: bool,
        probe: Probe = probe_file,
        memo: ProbeMemo | None = None,
    ) -> None:
        self._catalog = catalog
        self._probe = probe
        self._memo = memo
        self._store = store
        self._staging = staging
        self._clock = clock
        self._tips = ChainTips() if exclusive_writer else None
        sqlite = catalog.engine.dialect.name == "sqlite"
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if sqlite else nullcontext()
        )
        self._rows = GroupCommit(catalog, self._write_lock)

    def surely_new(self, header: Header) -> bool:
        """True when the segment starts after its camera's latest segment, as this sole
        writer knows it: it cannot be committed yet, so the early check can be skipped (the
        commit checks again before anything is stored, and catches a reused id)."""
        return (
            self._tips is not None
            and self._tips.after_tip(header.camera_id, header.start_us) is not None
        )

    def committed(self, segment_id: str) -> SegmentRow | None:
        try:
            return self._catalog.get_segment(segment_id)
        except CatalogUnavailableError as exc:
            raise unavailable("catalog lookup", exc) from exc

    def check_existing(self, device_id: str, header: Header) -> Committed | None:
        """Same id + same hash: done already. Same id otherwise: a conflict, recorded."""
        row = self.committed(header.segment_id)
        if row is None:
            return None
        if row.sha256 == header.sha256 and row.camera_id == header.camera_id:
            return Committed(row.segment_id, True, row.sha256, row.chain_ok, row.object_key)
        try:
            with self._write_lock:
                # The device named is the one that caused the conflict: whoever committed
                # the id (the same as the offering device, unless it squatted another's id).
                self._catalog.record_conflict(
                    header.segment_id, header.camera_id, row.device_id, row.sha256, header.sha256
                )
        except CatalogError as exc:
            log.error("could not record conflict on segment %s: %s", header.segment_id, exc)
        if row.device_id != device_id:
            # Ids are scoped to their camera (rules.check_scope), so this is a row committed
            # before that rule, or with a camera id that extends this one: the device that
            # committed it caused the conflict, not the one uploading now.
            log.warning(
                "possible tampering by device %s: it committed segment id %s for its camera %s "
                "(sha256 %s); device %s now offers that id for camera %s (sha256 %s)",
                row.device_id,
                header.segment_id,
                row.camera_id,
                row.sha256,
                device_id,
                header.camera_id,
                header.sha256,
            )
        else:
            log.warning(
                "possible tampering: device %s offered segment %s (camera %s) with sha256 %s, "
                "committed as %s for camera %s",
                device_id,
                header.segment_id,
                header.camera_id,
                header.sha256,
                row.sha256,
                row.camera_id,
            )
        raise IngestError(
            Code.ALREADY_EXISTS,
            f"segment {header.segment_id} is already committed with a different "
            f"{'camera' if row.camera_id != header.camera_id else 'sha256'}; refused and "
            "recorded as a possible tampering",
        )

    def _judge_chain(self, header: Header) -> tuple[ChainVerdict, bool]:
        """The verdict, and whether nothing committed starts after this segment."""
        tips = self._tips
        tip = None if tips is None else tips.after_tip(header.camera_id, header.start_us)
        if tip is not None:
            return decide_chain(header, tip, None), True
        try:
            previous = self._catalog.previous_segment(header.camera_id, header.start_us)
            following = self._catalog.next_segment(header.camera_id, header.start_us)
        except CatalogUnavailableError as exc:
            raise unavailable("catalog lookup", exc) from exc
        return decide_chain(header, _neighbour(previous), _neighbour(following)), following is None

    def key_for(self, camera: CameraRow, header: Header) -> str:
        """The segment's object key (INVALID_ARGUMENT if it cannot be one)."""
        try:
            return object_key(
                camera.county,
                camera.site,
                header.camera_id,
                header.start_us,
                header.segment_id,
                header.container,
            )
        except StorageError as exc:
            raise IngestError(Code.INVALID_ARGUMENT, f"cannot name the object: {exc}") from exc

    def commit(self, device_id: str, camera: CameraRow, header: Header, staged: Path) -> Committed:
        """A verified staged file: into the store, then the catalog row (`record`)."""
        # Another replica may have committed it while we were receiving.
        done = self.check_existing(device_id, header)
        if done is not None:
            self._staging.discard(device_id, header.segment_id)
            return done
        key = self.key_for(camera, header)
        media = self.media(header, self._probe_staged(header.camera_id, staged))
        try:
            put_owned_file(self._store, key, staged, header.sha256)
        except StorageError as exc:
            raise unavailable("object store", exc) from exc
        done = self.record(device_id, header, key, media)
        self._staging.discard(device_id, header.segment_id)
        return done

    def _probe_staged(self, camera_id: str, staged: Path) -> MediaInfo:
        if self._memo is None:
            return self._probe(staged)
        try:
            with staged.open("rb") as f:
                head = f.read(PROBE_BYTES)
        except OSError:
            return self._probe(staged)  # it says why, as for any unreadable segment
        return self._memo(camera_id, head)

    def record(self, device_id: str, header: Header, key: str, media: SegmentMediaRow) -> Committed:
        """The object is durable under `key`: judge the chain, write the catalog row, keep
        the flag history or heal a later gap. Idempotent (a row already there is "already",
        or a recorded conflict)."""
        verdict, latest = self._judge_chain(header)
        detail = _flag_detail(header, verdict)
        row = SegmentRow(
            segment_id=header.segment_id,
            camera_id=header.camera_id,
            device_id=device_id,
            start_us=header.start_us,
            duration_us=header.duration_us,
            end_us=header.end_us,
            size_bytes=header.size_bytes,
            sha256=header.sha256,
            prev_sha256=header.prev_sha256,
            object_key=key,
            agent_flags=header.flags,
            chain_ok=verdict.chain_ok,
            flag=str(verdict.flag),
            flag_detail=detail,
            committed_at_us=self._clock.now_us(),
        )
        try:
            self._rows.add(row, media)  # with concurrent uploads' rows, in one transaction
        except DuplicateSegmentError:
            done = self.check_existing(device_id, header)  # lost a race: same or conflict
            if done is None:
                raise IngestError(Code.ABORTED, "catalog race, retry") from None
            return done
        except CatalogError as exc:
            raise unavailable("catalog write", exc) from exc
        if self._tips is not None:
            self._tips.committed(header.camera_id, _neighbour_of(row), latest)
        if not verdict.chain_ok:
            self._record_flag(header, verdict, detail)
        if verdict.heal_next is not None:
            self._heal(header, verdict.heal_next)
        log.info(
            "committed %s camera=%s bytes=%d key=%s%s",
            header.segment_id,
            header.camera_id,
            header.size_bytes,
            key,
            f" flag={verdict.flag}" if verdict.flag else "",
        )
        return Committed(header.segment_id, False, header.sha256, verdict.chain_ok, key)

    def media(self, header: Header, info: MediaInfo) -> SegmentMediaRow:
        """The catalog's media row from a probe's result (logged when it failed)."""
        if info.error:
            log.warning(
                "segment %s of camera %s: media not recognised, stored without media facts: %s",
                header.segment_id,
                header.camera_id,
                info.error,
            )
        return media_row(header, info)

    def _record_flag(self, header: Header, verdict: ChainVerdict, detail: str) -> None:
        """Keep the flag in the catalog's flag history (it outlives the segment)."""
        try:
            with self._write_lock:
                self._catalog.flag_segment(header.segment_id, str(verdict.flag), detail)
        except CatalogError as exc:
            log.error("segment %s: could not record flag history: %s", header.segment_id, exc)
        log.warning(
            "segment %s of camera %s flagged: %s", header.segment_id, header.camera_id, detail
        )

    def _heal(self, header: Header, healed_id: str) -> None:
        """The later segment's gap was waiting for this one: its link now verifies.

        After the row on purpose: a crash in between leaves a stale gap flag (a false alarm
        an operator can check), never a cleared flag on a predecessor that is not stored.
        """
        try:
            with self._write_lock:
                self._catalog.clear_flag(healed_id)
        except CatalogError as exc:
            log.error("segment %s: could not clear its healed flag: %s", healed_id, exc)
            return
        log.info(
            "segment %s of camera %s proves the link of %s: its gap flag is cleared",
            header.segment_id,
            header.camera_id,
            healed_id,
        )


def _flag_detail(header: Header, verdict: ChainVerdict) -> str:
    if verdict.chain_ok:
        return ""
    if verdict.flag == "gap":
        return (
            f"prev_sha256 {header.prev_sha256[:16]} names a segment not in the catalog "
            "(a gap before this segment)"
        )
    return (
        f"prev_sha256 {header.prev_sha256[:16] or '(empty)'} contradicts the camera's "
        "neighbouring segments (possible tampering)"
    )
