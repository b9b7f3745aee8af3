"""Object storage on any S3 API store (SeaweedFS, MinIO, Ceph RGW, AWS) through boto3.

Path-style addressing and SigV4, because S3-compatible stores on a private network are reached
by IP and port, not by virtual-host DNS. Request checksums are only sent when an operation
requires them, so stores that do not implement the newer flexible checksums still work.

Atomicity comes from S3 itself: a single PUT or a completed multipart upload makes the whole
object visible at once. Files above `multipart_threshold` go up in `part_size` parts (the
network cost of a failure is one part, not the whole file); any failure aborts the upload, so
no object and no billed orphan parts are left behind. The bucket is created on demand:
`ensure_bucket()` runs before the first write and again if the store reports it missing.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from controller.storage.answers import StoreAnswers
from controller.storage.base import (
    ObjectInfo,
    ObjectNotFoundError,
    ObjectWriter,
    StorageError,
    StoredObject,
    check_key,
    check_prefix,
    check_sha256_hex,
    content_type_for,
)
from controller.storage.multipart import MultipartMixin
from controller.storage.s3_stream import HttpPutter, credentials_of, sha256_b64

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # the S3 limit on every part but the last (SeaweedFS enforces it too)
MAX_PRESIGN_S = 7 * 24 * 3600  # the SigV4 limit
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}
_MISSING_BUCKET = {"NoSuchBucket"}
_T = TypeVar("_T")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', '?')}: {err.get('Message', '') or exc}"
    return f"{type(exc).__name__}: {exc}"


def make_s3_client(
    endpoint_url: str | None,
    access_key: str | None,
    secret_key: str | None,
    region: str,
    *,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    max_attempts: int = 3,
) -> S3Client:
    """A boto3 S3 client from its own session (no process-wide default session)."""
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            signature_version="s3v4",
            # The body is never hashed for the signature (UNSIGNED-PAYLOAD, even over plain
            # HTTP): uploads carry x-amz-checksum-sha256 instead, which the store verifies.
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


class _BodyReader(io.RawIOBase):
    """A botocore streaming body as a raw stream whose read errors are StorageErrors."""

    def __init__(self, body: Any, key: str) -> None:
        self._body = body
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data: bytes = self._body.read(len(view))
        except (BotoCoreError, ClientError, OSError) as exc:
            raise StorageError(f"read {self._key}: {_describe(exc)}") from exc
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3ObjectStore(MultipartMixin):
    """Objects in one bucket of an S3 API store (a `StreamingStore`: ingest streams into it)."""

    def __init__(
        self,
        endpoint_url: str | None,
        bucket: str,
        access_key: str | None,
        secret_key: str | None,
        region: str = "us-east-1",
        multipart_threshold: int = 8 * MIB,
        part_size: int = 8 * MIB,
        *,
        client: S3Client | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        """`client` may be injected (tests, shared pools); otherwise one is built here,
        which does no network I/O. `part_size` must be at least 5 MiB (S3 refuses smaller
        parts when the upload completes, so we refuse them here, before any upload);
        `multipart_threshold` may be smaller (a file just above it goes up as one part)."""
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise ValueError(f"bucket name {bucket!r} is not a valid S3 bucket name")
        if multipart_threshold < 1:
            raise ValueError("multipart_threshold must be positive")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size {part_size} is below the S3 minimum of 5 MiB")
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.region = region
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._client = client or make_s3_client(
            endpoint_url,
            access_key,
            secret_key,
            region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
        )
        self._bucket_ready = False
        self.answers = StoreAnswers()  # the health loop's evidence (store_health.py)
        self._putter = HttpPutter(
            endpoint_url, bucket, region, credentials_of(self._client), read_timeout, self.answers
        )

    def __repr__(self) -> str:
        return f"S3ObjectStore(endpoint={self.endpoint_url!r}, bucket={self.bucket!r})"

    def _call(self, op: str, key: str, fn: Callable[[], _T], *, remote: bool = True) -> _T:
        """Run one boto3 call, translating its errors once, here, into StorageError, and
        noting whether the store answered (a 404 is an answer) in `answers`. `remote` False:
        the call asks nothing of the store (presigning), so it is no evidence either way."""
        answers = self.answers if remote else StoreAnswers()
        try:
            result = fn()
        except ClientError as exc:
            if _code(exc) in _MISSING_KEY:
                answers.ok()
                raise ObjectNotFoundError(f"{op} {key}: no such object") from exc
            answers.failed()
            raise StorageError(f"{op} {key}: {_describe(exc)}") from exc
        except BotoCoreError as exc:
            answers.failed()
            raise StorageError(f"{op} {key}: {_describe(exc)}") from exc
        except OSError as exc:
            answers.failed()
            raise StorageError(f"{op} {key}: {exc.strerror or exc}") from exc
        answers.ok()
        return result

    def _missing_bucket(self, exc: StorageError) -> bool:
        cause = exc.__cause__
        return isinstance(cause, ClientError) and _code(cause) in _MISSING_BUCKET

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (safe to call repeatedly, and concurrently)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(f"head bucket {self.bucket}: {_describe(exc)}") from exc
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            try:
                self._client.create_bucket(**kwargs)
                log.info("created bucket %s on %s", self.bucket, self.endpoint_url)
            except ClientError as create_exc:
                if _code(create_exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise StorageError(
                        f"create bucket {self.bucket}: {_describe(create_exc)}"
                    ) from create_exc
        except BotoCoreError as exc:
            raise StorageError(f"head bucket {self.bucket}: {_describe(exc)}") from exc
        self._bucket_ready = True

    def put_file(self, key: str, path: Path, sha256_hex: str) -> None:
        check_key(key)
        check_sha256_hex(sha256_hex)
        if not self._bucket_ready:
            self.ensure_bucket()
        try:
            self._put(key, path, sha256_hex)
        except StorageError as exc:
            if not self._missing_bucket(exc):
                raise
            self._bucket_ready = False  # deleted behind our back: recreate once, retry once
            self.ensure_bucket()
            self._put(key, path, sha256_hex)

    def open_put(
        self,
        key: str,
        size: int,
        checksum_sha256_hex: str,
        object_sha256_hex: str = "",
        part: tuple[str, int] | None = None,
    ) -> ObjectWriter:
        """A streamed PUT of `size` bytes the store checks against `checksum_sha256_hex`:
        the whole object (its SHA-256 also kept as metadata), or `part` = (upload id,
        number) of a multipart upload (storage/s3_stream.py)."""
        check_key(key)
        check_sha256_hex(checksum_sha256_hex)
        if size < 0:
            raise StorageError(f"put {key}: negative size {size}")
        if not self._bucket_ready:
            self.ensure_bucket()
        if part is not None:
            upload_id, number = part
            query = {"partNumber": str(number), "uploadId": upload_id}
            return self._putter.open(key, size, checksum_sha256_hex, query)
        headers = {
            "Content-Type": content_type_for(key),
            "x-amz-meta-sha256": check_sha256_hex(object_sha256_hex or checksum_sha256_hex),
        }
        return self._putter.open(key, size, checksum_sha256_hex, None, headers)

    def _put(self, key: str, path: Path, sha256_hex: str) -> None:
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise StorageError(f"put {key}: {exc.strerror or exc}") from exc
        extra: dict[str, Any] = {
            "ContentType": content_type_for(key),
            "Metadata": {"sha256": sha256_hex},
        }
        if size > self.multipart_threshold:
            self._put_multipart(key, path, size, extra)
            return
        extra["ChecksumSHA256"] = sha256_b64(sha256_hex)  # the store verifies the bytes
        try:
            body = open(path, "rb")  # closed below
        except OSError as exc:
            raise StorageError(f"put {key}: {exc.strerror or exc}") from exc
        with body:
            self._call(
                "put",
                key,
                lambda: self._client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ContentLength=size, **extra
                ),
            )

    def open_read(self, key: str) -> BinaryIO:
        check_key(key)
        try:
            got = self._call(
                "open", key, lambda: self._client.get_object(Bucket=self.bucket, Key=key)
            )
        except StorageError as exc:
            if self._missing_bucket(exc):
                raise ObjectNotFoundError(f"open {key}: no such object (no bucket)") from exc
            raise
        return io.BufferedReader(_BodyReader(got["Body"], key), buffer_size=256 * 1024)

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as f:
            return f.read()

    def head(self, key: str) -> ObjectInfo | None:
        check_key(key)
        try:
            got = self._call(
                "stat", key, lambda: self._client.head_object(Bucket=self.bucket, Key=key)
            )
        except ObjectNotFoundError:
            return None
        except StorageError as exc:
            if self._missing_bucket(exc):
                return None
            raise
        sha = {k.lower(): v for k, v in got.get("Metadata", {}).items()}.get("sha256")
        return ObjectInfo(key=key, size=int(got["ContentLength"]), sha256_hex=sha)

    def size(self, key: str) -> int | None:
        info = self.head(key)
        return None if info is None else info.size

    def delete(self, key: str) -> None:
        check_key(key)
        try:
            self._call(
                "delete", key, lambda: self._client.delete_object(Bucket=self.bucket, Key=key)
            )
        except ObjectNotFoundError:
            return
        except StorageError as exc:
            if not self._missing_bucket(exc):
                raise

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        return (item["Key"] for item in self._listing(prefix))

    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        for item in self._listing(prefix):
            modified_us = int(item["LastModified"].timestamp() * 1_000_000)
            yield StoredObject(item["Key"], int(item["Size"]), modified_us)

    def _listing(self, prefix: str) -> Iterator[Any]:
        check_prefix(prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        iterator = iter(pages)
        while True:
            try:
                page = self._call("list", repr(prefix), lambda: next(iterator, None))
            except StorageError as exc:
                if self._missing_bucket(exc):
                    return
                raise
            if page is None:
                return
            yield from page.get("Contents", [])

    def presigned_get(self, key: str, expires_s: int) -> str | None:
        check_key(key)
        if not 1 <= expires_s <= MAX_PRESIGN_S:
            raise StorageError(f"presign {key}: expiry {expires_s}s is outside 1..{MAX_PRESIGN_S}")
        return self._call(
            "presign",
            key,
            lambda: self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=expires_s,
            ),
            remote=False,
        )
