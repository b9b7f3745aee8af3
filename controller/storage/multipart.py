"""Multipart uploads as ingest's staging: create, list parts, complete, abort, list uploads.

An unfinished multipart upload is invisible under its key (S3 shows an object only once
CompleteMultipartUpload succeeds), survives any controller process, and every replica can
read its part list. That makes it the shared staging of an ingest that streams into the
store (controller/ingest/stream.py): a controller killed mid-segment leaves parts any replica
resumes from, and an upload that is never finished is aborted by the retention sweep.

Parts themselves are PUT by `S3ObjectStore.open_put` (streamed, each checked by the store
against its `x-amz-checksum-sha256`); the calls here are the small control requests, through
boto3 with its error translation (`_call`). `put_file` of a large file (a whole file at
hand, not a stream) goes up here too, part by part (`_put_multipart`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from controller.storage.base import (
    ObjectNotFoundError,
    PartInfo,
    StorageError,
    UploadInfo,
    check_key,
    check_prefix,
    check_sha256_hex,
    content_type_for,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger("controller.storage.s3")
MAX_PARTS = 10_000  # the S3 limit on parts per multipart upload

_T = TypeVar("_T")
_NO_UPLOAD = "NoSuchUpload"


def _no_upload(exc: StorageError) -> bool:
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == _NO_UPLOAD


class MultipartMixin:
    """The multipart calls of `S3ObjectStore` (it provides the client and `_call`)."""

    bucket: str
    part_size: int
    _client: S3Client
    _bucket_ready: bool

    def _call(self, op: str, key: str, fn: Callable[[], _T]) -> _T:  # pragma: no cover
        raise NotImplementedError

    def ensure_bucket(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def create_upload(self, key: str, sha256_hex: str) -> str:
        """A new multipart upload for `key`, the object's SHA-256 in its metadata; its id."""
        check_key(key)
        check_sha256_hex(sha256_hex)
        if not self._bucket_ready:
            self.ensure_bucket()
        created = self._call(
            "start multipart put",
            key,
            lambda: self._client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ContentType=content_type_for(key),
                Metadata={"sha256": sha256_hex},
                ChecksumAlgorithm="SHA256",
            ),
        )
        return str(created["UploadId"])

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo] | None:
        """The parts stored so far, by number; None when the upload no longer exists."""
        check_key(key)
        found: list[PartInfo] = []
        marker = 0
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id}
            if marker:
                kwargs["PartNumberMarker"] = marker
            try:
                page: Any = self._call(
                    "list parts of", key, functools.partial(self._client.list_parts, **kwargs)
                )
            except (ObjectNotFoundError, StorageError) as exc:
                if isinstance(exc, ObjectNotFoundError) or _no_upload(exc):
                    return None
                raise
            for part in page.get("Parts", []):
                found.append(
                    PartInfo(int(part["PartNumber"]), int(part["Size"]), str(part["ETag"]))
                )
            if not page.get("IsTruncated"):
                return sorted(found, key=lambda p: p.number)
            marker = int(page.get("NextPartNumberMarker", 0))
            if not marker:
                return sorted(found, key=lambda p: p.number)

    def complete_upload(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str, str]]
    ) -> None:
        """Make the object visible from `parts` = (number, ETag, SHA-256 base64), in order.
        ObjectNotFoundError when the upload is gone (completed or aborted before)."""
        check_key(key)
        listed = [{"PartNumber": n, "ETag": etag, "ChecksumSHA256": sha} for n, etag, sha in parts]
        try:
            self._call(
                "complete multipart put",
                key,
                lambda: self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": listed},  # type: ignore[typeddict-item]
                ),
            )
        except StorageError as exc:
            if _no_upload(exc):
                raise ObjectNotFoundError(f"complete {key}: no such multipart upload") from exc
            raise

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Drop an upload and its parts; an upload already gone is not an error."""
        check_key(key)
        try:
            self._call(
                "abort multipart put",
                key,
                lambda: self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                ),
            )
        except ObjectNotFoundError:
            return
        except StorageError as exc:
            if not _no_upload(exc):
                raise

    def list_uploads(self, prefix: str = "") -> Iterator[UploadInfo]:
        """Every unfinished multipart upload under `prefix` (for the abandoned-upload sweep)."""
        check_prefix(prefix)
        key_marker = ""
        id_marker = ""
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if key_marker:
                kwargs["KeyMarker"] = key_marker
                kwargs["UploadIdMarker"] = id_marker
            page: Any = self._call(
                "list multipart uploads",
                repr(prefix),
                functools.partial(self._client.list_multipart_uploads, **kwargs),
            )
            for upload in page.get("Uploads", []):
                initiated = upload.get("Initiated")
                at_us = int(initiated.timestamp() * 1_000_000) if initiated is not None else 0
                yield UploadInfo(str(upload["Key"]), str(upload["UploadId"]), at_us)
            if not page.get("IsTruncated"):
                return
            key_marker = str(page.get("NextKeyMarker", ""))
            id_marker = str(page.get("NextUploadIdMarker", ""))
            if not key_marker:
                return

    def _put_multipart(self, key: str, path: Path, size: int, extra: dict[str, Any]) -> None:
        """`put_file` of a file above the threshold: part by part, aborted on any failure."""
        part_size = max(self.part_size, -(-size // MAX_PARTS))
        created = self._call(
            "start multipart put",
            key,
            lambda: self._client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra),
        )
        upload_id = created["UploadId"]
        parts: list[CompletedPartTypeDef] = []
        try:
            with open(path, "rb") as src:
                number = 1
                while chunk := src.read(part_size):
                    result = self._call(
                        f"put part {number} of",
                        key,
                        lambda: self._client.upload_part(
                            Bucket=self.bucket,
                            Key=key,
                            UploadId=upload_id,
                            PartNumber=number,  # noqa: B023 - called before the loop moves on
                            Body=chunk,
                        ),
                    )
                    parts.append({"ETag": result["ETag"], "PartNumber": number})
                    number += 1
            self._call(
                "complete multipart put",
                key,
                lambda: self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                ),
            )
        except BaseException as exc:
            self._abort(key, upload_id)
            if isinstance(exc, OSError):
                raise StorageError(f"put {key}: {exc.strerror or exc}") from exc
            raise

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.abort_upload(key, upload_id)
        except StorageError as exc:
            # The object was never completed, so nothing is visible; the store's own
            # lifecycle rules reap parts we could not abort while it was unreachable.
            log.warning("could not abort multipart upload of %s: %s", key, exc)
