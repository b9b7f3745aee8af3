"""Choosing a backend from one configuration string (`[storage] url` in controller.toml).

Accepted forms:

    /var/lib/vigil/objects                   a plain path: the local-directory backend
    file:///var/lib/vigil/objects            the same, as a URL
    s3://BUCKET?endpoint=http://10.0.0.5:8333&access_key=K&secret_key=S
        &region=us-east-1&multipart_threshold_mib=8&part_size_mib=8
                                             any S3 API store

For `s3://`, anything not in the query comes from the usual AWS environment variables:
`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (endpoint), `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_REGION` or `AWS_DEFAULT_REGION`. Keeping the secret in the
environment rather than the URL keeps it out of config files; `redact_store_url` masks it
whenever a URL has to be shown. Parsing is pure (`parse_store_url`) and tested without I/O.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from controller.storage.base import ObjectStore
from controller.storage.local import LocalObjectStore
from controller.storage.s3 import MIB, S3ObjectStore

_S3_PARAMS = {
    "endpoint",
    "access_key",
    "secret_key",
    "region",
    "multipart_threshold_mib",
    "part_size_mib",
}
_SECRET_QUERY = re.compile(r"((?:secret_key|access_key)=)[^&#]*")
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


@dataclass(frozen=True)
class LocalSpec:
    root: Path


@dataclass(frozen=True)
class S3Spec:
    bucket: str
    endpoint_url: str | None
    access_key: str | None
    secret_key: str | None
    region: str
    multipart_threshold: int
    part_size: int

    def __repr__(self) -> str:  # never show the secret, even in a debugger or a traceback
        return f"S3Spec(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r})"


def redact_store_url(url: str) -> str:
    """The URL with access/secret keys and any user:password replaced by `***`."""
    return _USERINFO.sub(r"\g<scheme>***@", _SECRET_QUERY.sub(r"\g<1>***", url))


def _positive_mib(value: str, name: str) -> int:
    try:
        mib = float(value)
    except ValueError:
        raise ValueError(f"storage url: {name}={value!r} is not a number") from None
    if not mib > 0:
        raise ValueError(f"storage url: {name} must be positive")
    return max(1, round(mib * MIB))


def parse_store_url(url: str, env: Mapping[str, str]) -> LocalSpec | S3Spec:
    """Turn a storage URL (see the module docstring) into a backend spec; ValueError if bad."""
    if not url or not url.strip():
        raise ValueError("storage url is empty")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme in ("", "file") or re.fullmatch(r"[A-Za-z]", parts.scheme):
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise ValueError(
                    f"storage url {redact_store_url(url)}: remote file hosts unsupported"
                )
            path = unquote(parts.path)
        else:
            path = url
        if not path:
            raise ValueError(f"storage url {redact_store_url(url)} has no path")
        return LocalSpec(root=Path(path).expanduser())
    if parts.scheme != "s3":
        raise ValueError(
            f"storage url {redact_store_url(url)}: scheme {parts.scheme!r} is not file or s3"
        )
    if parts.path not in ("", "/"):
        raise ValueError(
            f"storage url {redact_store_url(url)}: put the bucket as the host (s3://BUCKET?...)"
        )
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = set(query) - _S3_PARAMS
    if unknown:
        raise ValueError(f"storage url: unknown parameter(s) {', '.join(sorted(unknown))}")
    repeated = [k for k, v in query.items() if len(v) > 1]
    if repeated:
        raise ValueError(f"storage url: parameter(s) given twice: {', '.join(sorted(repeated))}")
    q = {k: v[0] for k, v in query.items()}
    bucket = parts.hostname or ""
    if not bucket:
        raise ValueError(f"storage url {redact_store_url(url)} names no bucket")
    endpoint = q.get("endpoint") or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError(f"storage url: endpoint {redact_store_url(endpoint)} is not http(s)")
    return S3Spec(
        bucket=bucket,
        endpoint_url=endpoint or None,
        access_key=q.get("access_key") or env.get("AWS_ACCESS_KEY_ID"),
        secret_key=q.get("secret_key") or env.get("AWS_SECRET_ACCESS_KEY"),
        region=q.get("region")
        or env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or "us-east-1",
        multipart_threshold=_positive_mib(
            q.get("multipart_threshold_mib", "8"), "multipart_threshold_mib"
        ),
        part_size=_positive_mib(q.get("part_size_mib", "8"), "part_size_mib"),
    )


def open_store(url: str, env: Mapping[str, str] | None = None) -> ObjectStore:
    """The ObjectStore a storage URL names (see the module docstring). Does no network I/O:
    an S3 bucket is created on the first write. ValueError for a malformed URL."""
    spec = parse_store_url(url, os.environ if env is None else env)
    if isinstance(spec, LocalSpec):
        return LocalObjectStore(spec.root)
    return S3ObjectStore(
        spec.endpoint_url,
        spec.bucket,
        spec.access_key,
        spec.secret_key,
        region=spec.region,
        multipart_threshold=spec.multipart_threshold,
        part_size=spec.part_size,
    )
