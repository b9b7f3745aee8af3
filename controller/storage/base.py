"""The object-store seam: one small interface, one exception tree, and the key layout.

Every backend (a local directory, any S3 API store) implements `ObjectStore`; the rest of the
controller sees only this module. Third-party errors (OSError, botocore) are translated once,
at the backend's boundary, into:

    StorageError            any failure; the message names the operation and the key
    ├── InvalidKeyError     a key that could escape the store or is malformed (nothing touched)
    ├── ObjectNotFoundError reading an object that is not there
    └── ChecksumMismatchError  the store found other bytes than the SHA-256 they came with

Keys follow docs/architecture.md: `{county}/{site}/{camera}/{YYYY}/{MM}/{DD}/{HH}/{segment_id}.ts`,
the hour path in UTC from the segment's start, so one camera-hour is one listable prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

MAX_KEY_BYTES = 1024  # the S3 limit
MAX_COMPONENT_BYTES = 255  # a file name on every local filesystem we deploy on
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_EXT = re.compile(r"[A-Za-z0-9]{1,8}")
_CONTENT_TYPES = {"ts": "video/mp2t", "mp4": "video/mp4", "m4s": "video/iso.segment"}


class StorageError(Exception):
    """An object-store operation failed; the message says which operation and which key."""


class InvalidKeyError(StorageError):
    """A key (or key component) was refused before any I/O happened."""


class ObjectNotFoundError(StorageError):
    """The object asked for does not exist."""


class ChecksumMismatchError(StorageError):
    """The store refused bytes that do not hash to the SHA-256 they were sent with."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object without reading it."""

    key: str
    size: int
    sha256_hex: str | None  # None for objects written by something other than Vigil


class ObjectStore(Protocol):
    """Where segment bytes live. Every method raises StorageError (never a library error)."""

    def put_file(self, key: str, path: Path, sha256_hex: str) -> None:
        """Store the file at `path` under `key`, atomically: afterwards the whole object is
        there, or (on error) nothing new is. `sha256_hex` (the caller's hash of the file)
        is stored with the object as metadata. An existing object is replaced."""
        ...

    def open_read(self, key: str) -> BinaryIO:
        """A readable stream of the object; ObjectNotFoundError if it is missing."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """The whole object; ObjectNotFoundError if it is missing."""
        ...

    def size(self, key: str) -> int | None:
        """Size in bytes, or None if the object is absent."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Size and stored SHA-256, or None if the object is absent."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting an absent object is not an error (idempotent)."""
        ...

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Every key that starts with `prefix` (a string prefix, as in S3; order unspecified)."""
        ...

    def presigned_get(self, key: str, expires_s: int) -> str | None:
        """A URL anyone can GET for `expires_s` seconds, or None if the backend has none."""
        ...


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it: key, size and when it was last written."""

    key: str
    size: int
    modified_us: int  # the store's last-modified time (microseconds since the epoch)


@runtime_checkable
class ListingStore(Protocol):
    """A store whose listing tells each object's age (both backends): what the sweep of
    unreferenced objects needs to leave recent writes alone (controller/retention/orphans.py)."""

    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object whose key starts with `prefix` (order unspecified)."""
        ...


@runtime_checkable
class AdoptingStore(Protocol):
    """A store that can take over a file the caller is done with instead of copying it.

    Optional: only backends that can do better than `put_file` implement it (the local
    directory links the file into place). Callers go through `put_owned_file`, which falls
    back to `put_file` for every other backend.
    """

    def adopt_file(self, key: str, path: Path, sha256_hex: str) -> None:
        """Same contract as `put_file` (atomic, durable, replaces, hash kept with the object),
        but the caller hands `path` over: it must never modify that file again (it may still
        read it or delete its name). The store may keep the very same inode as the object."""
        ...


@dataclass(frozen=True)
class PartInfo:
    """One stored part of an unfinished multipart upload."""

    number: int
    size: int
    etag: str


@dataclass(frozen=True)
class UploadInfo:
    """One unfinished multipart upload in the store."""

    key: str
    upload_id: str
    initiated_us: int


class ObjectWriter(Protocol):
    """A PUT in flight (storage/s3_stream.py): bytes as they come, then the store's answer."""

    def write(self, data: bytes | memoryview) -> None: ...

    def finish(self) -> Mapping[str, str]: ...

    def abort(self) -> None: ...


@runtime_checkable
class StreamingStore(Protocol):
    """A store that takes an object while its bytes are still arriving (S3): a single PUT
    for a small object, multipart uploads for a large one, each PUT checked by the store
    against a SHA-256 it is given. Ingest streams into it instead of staging on disk; the
    multipart upload and its parts are then the staging, shared by every replica.

    `open_put` raises ChecksumMismatchError (a StorageError) from `finish()` when the bytes
    do not hash to `checksum_sha256_hex`; `part` = (upload id, part number) for a part.
    """

    part_size: int

    def head(self, key: str) -> ObjectInfo | None: ...

    def open_read(self, key: str) -> BinaryIO: ...

    def delete(self, key: str) -> None: ...

    def open_put(
        self,
        key: str,
        size: int,
        checksum_sha256_hex: str,
        object_sha256_hex: str = "",
        part: tuple[str, int] | None = None,
    ) -> ObjectWriter: ...

    def create_upload(self, key: str, sha256_hex: str) -> str: ...

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo] | None: ...

    def complete_upload(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str, str]]
    ) -> None: ...

    def abort_upload(self, key: str, upload_id: str) -> None: ...

    def list_uploads(self, prefix: str = "") -> Iterator[UploadInfo]: ...


def put_owned_file(store: ObjectStore, key: str, path: Path, sha256_hex: str) -> None:
    """Store a file its caller will not modify again (a finished, verified upload).

    Backends that can adopt the file do so (no copy of the bytes); the others `put_file` it.
    Either way the object is durable when this returns, and the caller deletes `path`.
    """
    if isinstance(store, AdoptingStore):
        store.adopt_file(key, path, sha256_hex)
    else:
        store.put_file(key, path, sha256_hex)


def check_component(value: str, what: str) -> str:
    """One path component of a key: non-empty, no separators, no dot-names, no control chars.

    Components starting with '.' are refused outright: that rules out '.' and '..' and keeps
    the local backend's hidden temp and metadata files out of the key space.
    """
    if not value:
        raise InvalidKeyError(f"{what} is empty")
    if "/" in value or "\\" in value:
        raise InvalidKeyError(f"{what} {value!r} contains a path separator")
    if value.startswith("."):
        raise InvalidKeyError(f"{what} {value!r} starts with '.'")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidKeyError(f"{what} {value!r} contains a control character")
    if len(value.encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise InvalidKeyError(f"{what} is longer than {MAX_COMPONENT_BYTES} bytes")
    return value


def check_key(key: str) -> str:
    """Validate a whole key: relative, '/'-separated components each passing check_component."""
    if not isinstance(key, str) or not key:
        raise InvalidKeyError("object key is empty")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"object key is longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise InvalidKeyError(f"object key {key!r} is absolute")
    for part in key.split("/"):
        check_component(part, f"component of key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: '' or a key-like string (its last component may be partial)."""
    if prefix == "":
        return prefix
    head, _, tail = prefix.rpartition("/")
    if head:
        check_key(head)
    if tail:
        check_component(tail, f"component of prefix {prefix!r}")
    return prefix


def check_sha256_hex(sha256_hex: str) -> str:
    """A lowercase hex SHA-256 digest (64 characters)."""
    if not isinstance(sha256_hex, str) or not _SHA256_HEX.fullmatch(sha256_hex):
        raise StorageError(f"sha256 {sha256_hex!r} is not 64 lowercase hex characters")
    return sha256_hex


def object_key(
    county: str, site: str, camera_id: str, start_us: int, segment_id: str, ext: str = "ts"
) -> str:
    """`{county}/{site}/{camera}/{YYYY}/{MM}/{DD}/{HH}/{segment_id}.{ext}`, hour path in UTC.

    Raises InvalidKeyError for a component that could escape its directory or a negative time.
    """
    if isinstance(start_us, bool) or not isinstance(start_us, int) or start_us < 0:
        raise InvalidKeyError(f"start_us {start_us!r} is not a non-negative integer")
    if not _EXT.fullmatch(ext):
        raise InvalidKeyError(f"extension {ext!r} is not 1-8 letters or digits")
    parts = [
        check_component(county, "county"),
        check_component(site, "site"),
        check_component(camera_id, "camera id"),
    ]
    try:
        at = _EPOCH + timedelta(microseconds=start_us)
    except OverflowError as exc:
        raise InvalidKeyError(f"start_us {start_us} is out of range") from exc
    parts += [f"{at.year:04d}", f"{at.month:02d}", f"{at.day:02d}", f"{at.hour:02d}"]
    parts.append(check_component(f"{segment_id}.{ext}", "segment id"))
    return check_key("/".join(parts))


def content_type_for(key: str) -> str:
    """The MIME type a player needs for this key (`.ts` must be served as video/mp2t)."""
    _, _, ext = key.rpartition(".")
    return _CONTENT_TYPES.get(ext.lower(), "application/octet-stream")
