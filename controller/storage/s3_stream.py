"""Streaming PUTs to an S3 API store: bytes go out as they arrive, the store checks them.

Why not boto3 for this: boto3 wants the whole body up front (a file or bytes), retries by
rewinding it, and over plain HTTP signs the payload, i.e. hashes every byte once more. Ingest
has neither a file nor a rewindable body: it has chunks arriving from an agent. So the data
path is one signed HTTP request per object or part, written here:

- SigV4 from botocore's signer over the headers only (`UNSIGNED-PAYLOAD`): the controller
  never hashes a byte for the signature;
- `x-amz-checksum-sha256` names the SHA-256 the bytes must have, and the store verifies it
  as they land (SeaweedFS, MinIO, Ceph RGW and AWS answer `BadDigest` to a mismatch and keep
  nothing); for a whole segment that is the hash the agent declared, so the store, not the
  controller, does the only hashing of those bytes;
- `Content-Length` is fixed before the first byte: a request cut short (the agent went away,
  the controller died) is discarded by the store, never stored as a short object.

Back-pressure is the socket's: `write` blocks while the store is slow, the worker thread stops
reading the agent's gRPC stream, and HTTP/2 flow control stops the agent. Connections are
kept alive and reused (a small pool per store); any error closes the one it happened on.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from controller.storage.answers import StoreAnswers
from controller.storage.base import ChecksumMismatchError, StorageError

_KEEP = 64  # idle connections kept per store
_ERROR_SNIPPET = 400


class _UnsignedPayload(S3SigV4Auth):
    """SigV4 over the headers, `UNSIGNED-PAYLOAD` for the body (the checksum header and
    TLS, where used, protect the bytes; signing them would hash every byte again)."""

    def _should_sha256_sign_payload(self, request: AWSRequest) -> bool:
        return False


def sha256_b64(sha256_hex: str) -> str:
    """The `x-amz-checksum-sha256` form of a hex digest."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


def _error_code(body: bytes) -> str:
    start = body.find(b"<Code>")
    end = body.find(b"</Code>")
    if start < 0 or end < start:
        return ""
    return body[start + 6 : end].decode("utf-8", "replace")


class HttpPutter:
    """Signed streaming PUTs to one endpoint and bucket (thread-safe; pooled connections)."""

    def __init__(
        self,
        endpoint_url: str | None,
        bucket: str,
        region: str,
        credentials: Credentials | None,
        timeout_s: float,
        answers: StoreAnswers | None = None,
    ) -> None:
        """`answers`: noted with each PUT's outcome (the store answered, or failed)."""
        url = endpoint_url or f"https://s3.{region}.amazonaws.com"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"S3 endpoint {url!r} is not an http(s) URL")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        self._bucket = bucket
        self._region = region
        self._credentials = credentials
        self._timeout = timeout_s
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []
        self._ssl = ssl.create_default_context() if self._https else None
        self.answers = answers or StoreAnswers()

    def _connection(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        if self._ssl is not None:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._ssl
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < _KEEP:
                self._idle.append(conn)
                return
        conn.close()

    def open(
        self,
        key: str,
        size: int,
        checksum_sha256_hex: str,
        query: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> PutStream:
        """Start a PUT of `size` bytes to `key` (a part when `query` names one)."""
        if self._credentials is None:
            raise StorageError(f"put {key}: no S3 credentials configured")
        path = f"{self._prefix}/{self._bucket}/{quote(key, safe='/~')}"
        if query:
            path += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(query.items()))
        headers = {
            "Content-Length": str(size),
            "x-amz-checksum-sha256": sha256_b64(checksum_sha256_hex),
            **(extra_headers or {}),
        }
        request = AWSRequest("PUT", self._base + path, headers=headers)
        _UnsignedPayload(self._credentials.get_frozen_credentials(), "s3", self._region).add_auth(
            request
        )
        conn = self._connection()
        try:
            conn.putrequest("PUT", path, skip_accept_encoding=True)
            for name, value in request.headers.items():
                if name.lower() != "host":
                    conn.putheader(name, value)
            conn.endheaders()
        except OSError as exc:
            conn.close()
            self.answers.failed()
            raise StorageError(f"put {key}: {exc.strerror or exc}") from exc
        return PutStream(self, conn, key, size)


class PutStream:
    """One PUT in flight: `write` its bytes, then `finish` (or `abort`)."""

    def __init__(
        self, owner: HttpPutter, conn: http.client.HTTPConnection, key: str, size: int
    ) -> None:
        self._owner = owner
        self._conn: http.client.HTTPConnection | None = conn
        self.key = key
        self.size = size
        self.sent = 0

    def write(self, data: bytes | memoryview) -> None:
        """Send bytes (blocks while the store is slow: that is the back-pressure)."""
        conn = self._conn
        if conn is None:
            raise StorageError(f"put {self.key}: the request is closed")
        if self.sent + len(data) > self.size:
            self.abort()
            raise StorageError(f"put {self.key}: more than the {self.size} bytes announced")
        try:
            conn.send(data)
        except OSError as exc:
            self.abort()
            self._owner.answers.failed()
            raise StorageError(f"put {self.key}: {exc.strerror or exc}") from exc
        self.sent += len(data)

    def finish(self) -> Mapping[str, str]:
        """The store's answer: its response headers (ETag...). ChecksumMismatchError when it
        found other bytes than the checksum says, StorageError for any other failure."""
        conn = self._conn
        if conn is None:
            raise StorageError(f"put {self.key}: the request is closed")
        if self.sent != self.size:
            self.abort()
            raise StorageError(f"put {self.key}: {self.sent} of {self.size} bytes sent")
        try:
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.abort()
            self._owner.answers.failed()
            raise StorageError(f"put {self.key}: {exc}") from exc
        self._conn = None
        headers = {k.lower(): v for k, v in response.getheaders()}
        if response.will_close:
            conn.close()
        else:
            self._owner._release(conn)
        if response.status == 200:
            self._owner.answers.ok()
            return headers
        code = _error_code(body)
        message = f"put {self.key}: HTTP {response.status} {code}: {body[:_ERROR_SNIPPET]!r}"
        if code in ("BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest"):
            self._owner.answers.ok()  # the store is up: it judged the bytes
            raise ChecksumMismatchError(message)
        self._owner.answers.failed()
        raise StorageError(message)

    def abort(self) -> None:
        """Drop the request: the store discards a PUT whose bytes never all arrived."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if conn.sock is not None:
                    conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


def credentials_of(client: Any) -> Credentials | None:
    """The credentials a boto3 client signs with (botocore resolves env and config)."""
    signer = getattr(client, "_request_signer", None)
    creds = getattr(signer, "_credentials", None)
    return creds if isinstance(creds, Credentials) else None
