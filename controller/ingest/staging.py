"""Staged partial uploads on local disk: what makes resume survive broken links and restarts.

Layout: `<root>/<device_id>/<segment_id>.part` (the bytes received so far) and `.json` (the
header they belong to). Per-device directories keep one device's staging from touching
another's even when segment ids collide. The part file is written with unbuffered `write()`
calls, so after a controller crash (even kill -9) the kernel still holds every byte that was
acknowledged to the filesystem, and the file size *is* the resume offset. Power loss can
leave a torn tail; that is caught by the SHA-256 check at the end, which discards the staging
(the agent then re-sends from 0). The hash state is not persisted: a resumed stream rehashes
the kept prefix from disk, which costs a read of bytes already on this machine, not the
village uplink.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from controller.ingest.rules import Header, OffsetPlan, StagingAction

_READ = 4 * 1024 * 1024


class StagedUpload:
    """One open staging file: appends chunks and hashes them as they arrive."""

    def __init__(self, part: Path, start: int) -> None:
        self.path = part
        self._hash = hashlib.sha256()
        flags = os.O_RDWR | os.O_CREAT
        self._fd = os.open(part, flags, 0o600)
        try:
            os.ftruncate(self._fd, start)
            self._rehash(start)
            os.lseek(self._fd, start, os.SEEK_SET)
        except BaseException:
            os.close(self._fd)
            raise
        self.received = start

    def _rehash(self, length: int) -> None:
        os.lseek(self._fd, 0, os.SEEK_SET)
        left = length
        while left > 0:
            data = os.read(self._fd, min(_READ, left))
            if not data:
                raise OSError(f"{self.path} is shorter than {length} bytes")
            self._hash.update(data)
            left -= len(data)

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._hash.update(chunk)
        self.received += len(chunk)

    def sha256_hex(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Staging:
    """The staging directory of one controller."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _paths(self, device_id: str, segment_id: str) -> tuple[Path, Path]:
        base = self.root / device_id
        return base / f"{segment_id}.part", base / f"{segment_id}.json"

    def held(self, device_id: str, segment_id: str) -> tuple[int, Header] | None:
        """(bytes staged, their header), or None when nothing usable is staged."""
        part, meta = self._paths(device_id, segment_id)
        try:
            header = Header(**json.loads(meta.read_text(encoding="utf-8")))
            size = part.stat().st_size
        except (OSError, ValueError, TypeError):
            return None
        return size, header

    def open(self, device_id: str, header: Header, plan: OffsetPlan) -> StagedUpload:
        """Open the part file positioned at `plan.start`; FRESH rewrites the header sidecar."""
        part, meta = self._paths(device_id, header.segment_id)
        part.parent.mkdir(parents=True, exist_ok=True)
        if plan.action is StagingAction.FRESH:
            part.unlink(missing_ok=True)
            _write_json(meta, asdict(header) | {"offset": 0, "lease_id": ""})
        return StagedUpload(part, plan.start)

    def discard(self, device_id: str, segment_id: str) -> None:
        part, meta = self._paths(device_id, segment_id)
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)

    def entries(self) -> Iterator[tuple[str, str, float]]:
        """(device_id, segment_id, mtime) of every staged upload (for recovery and sweeping)."""
        if not self.root.is_dir():
            return
        for device_dir in self.root.iterdir():
            if not device_dir.is_dir():
                continue
            for meta in device_dir.glob("*.json"):
                part = meta.with_suffix(".part")
                try:
                    mtime = max(meta.stat().st_mtime, part.stat().st_mtime)
                except OSError:
                    mtime = 0.0
                yield device_dir.name, meta.stem, mtime

    def sweep(self, max_age_s: float, now_s: float) -> int:
        """Delete staged uploads untouched for `max_age_s` (abandoned); returns how many."""
        removed = 0
        for device_id, segment_id, mtime in list(self.entries()):
            if now_s - mtime > max_age_s:
                self.discard(device_id, segment_id)
                removed += 1
        return removed


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
