"""Export files on disk: a plain tar (video does not compress) written atomically, and read
back with nothing but the file and a public key.

Layout: `manifest.json`, `manifest.sig`, then `segments/000000_<id>.ts`, ... in recorded order.
Writing streams each segment from the object store, hashing as it copies: a segment whose
stored bytes do not match the catalog's SHA-256 stops the export (evidence is never shipped
with a silently corrupt part). Reading streams every member through SHA-256, refuses anything
that is not a regular file, and hands the digests to the pure `verify_export`.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.exports.manifest import (
    MANIFEST_NAME,
    SEGMENT_DIR,
    SIGNATURE_NAME,
    ExportInfo,
    ExportReport,
    ExportSegment,
    FileDigest,
    Problem,
    build_manifest,
    segment_file_name,
    sign_manifest,
    verify_export,
)
from controller.grants.codec import key_id, raw_public_key
from controller.storage.base import StorageError

MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_MEMBERS = 200_000
_CHUNK = 1024 * 1024


class ExportError(Exception):
    """The export could not be written, or the file is not an export at all."""


class _HashingReader(io.RawIOBase):
    """Reads through to `inner`, hashing and counting what passes."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self.inner.read(-1 if size is None else size)
        self.sha.update(data)
        self.count += len(data)
        return data


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    info.mode = 0o444
    tar.addfile(info, io.BytesIO(data))


def write_export(
    out: Path,
    info: ExportInfo,
    segments: Sequence[ExportSegment],
    open_segment: Callable[[ExportSegment], BinaryIO],
    key: Ed25519PrivateKey,
    media: Mapping[str, Mapping[str, object]] | None = None,
) -> bytes:
    """Write the export to `out` (atomically) and return the manifest bytes. `media`: each
    segment's media facts by segment id, listed in the manifest (segments are copied as
    stored, audio and all).

    `open_segment` opens a segment's stored bytes (e.g. `lambda s: store.open_read(s.object_key)`).
    ExportError when a segment is unreadable or does not match its catalog size/hash."""
    if not segments:
        raise ExportError("nothing to export: no segments in the granted range")
    manifest = build_manifest(info, segments, key_id(raw_public_key(key)), media)
    signature = sign_manifest(manifest, key)
    mtime = info.created_at_us // 1_000_000
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            _add_bytes(tar, MANIFEST_NAME, manifest, mtime)
            _add_bytes(tar, SIGNATURE_NAME, signature, mtime)
            for index, seg in enumerate(segments):
                member = tarfile.TarInfo(segment_file_name(index, seg.segment_id))
                member.size = seg.size_bytes
                member.mtime = seg.start_us // 1_000_000
                member.mode = 0o444
                try:
                    with open_segment(seg) as stream:
                        reader = _HashingReader(stream)
                        tar.addfile(member, reader)
                        trailing = stream.read(1)
                except (OSError, StorageError) as exc:
                    raise ExportError(f"segment {seg.segment_id}: cannot read: {exc}") from exc
                if trailing or reader.count != seg.size_bytes:
                    raise ExportError(f"segment {seg.segment_id}: stored size differs from catalog")
                if reader.sha.hexdigest() != seg.sha256:
                    raise ExportError(
                        f"segment {seg.segment_id}: stored bytes do not match the catalog SHA-256"
                    )
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


def read_export(path: Path) -> tuple[bytes | None, bytes | None, dict[str, FileDigest], list[str]]:
    """(manifest, signature, digests of the other files, their archive order), streaming.

    ExportError for a file that is not a tar, or holds links, devices or absurd sizes."""
    manifest: bytes | None = None
    signature: bytes | None = None
    digests: dict[str, FileDigest] = {}
    order: list[str] = []
    try:
        with tarfile.open(path, mode="r:") as tar:
            for count, member in enumerate(tar):
                if count >= MAX_MEMBERS:
                    raise ExportError(f"{path}: more than {MAX_MEMBERS} members")
                if not member.isfile():
                    raise ExportError(f"{path}: member {member.name[:80]!r} is not a regular file")
                name = member.name
                stream = tar.extractfile(member)
                assert stream is not None
                if name in (MANIFEST_NAME, SIGNATURE_NAME):
                    if member.size > MAX_MANIFEST_BYTES:
                        raise ExportError(f"{path}: {name} is implausibly large")
                    data = stream.read()
                    if name == MANIFEST_NAME:
                        manifest = data
                    else:
                        signature = data
                    continue
                sha = hashlib.sha256()
                while chunk := stream.read(_CHUNK):
                    sha.update(chunk)
                if name in digests:
                    raise ExportError(f"{path}: member {name[:80]!r} appears twice")
                digests[name] = FileDigest(sha.hexdigest(), member.size)
                if name.startswith(SEGMENT_DIR):
                    order.append(name)
    except (tarfile.TarError, EOFError) as exc:
        raise ExportError(f"{path} is not a readable export archive: {exc}") from None
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror}") from None
    return manifest, signature, digests, order


def verify_export_file(path: Path, public_raw: bytes) -> ExportReport:
    """Verify an export file with only the evidence public key."""
    try:
        manifest, signature, digests, order = read_export(path)
    except ExportError as exc:
        report = ExportReport()
        report.problems.append(Problem("manifest", str(path), str(exc)))
        return report
    return verify_export(manifest, signature, public_raw, digests, order)
