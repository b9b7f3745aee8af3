"""Choosing a store from a URL: parsing is pure; one round trip per backend proves the wiring."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from controller.storage import (
    LocalObjectStore,
    LocalSpec,
    S3ObjectStore,
    S3Spec,
    open_store,
    parse_store_url,
    redact_store_url,
)

MIB = 1024 * 1024


def test_plain_path_and_file_url_mean_local():
    assert parse_store_url("/var/lib/vigil/objects", {}) == LocalSpec(
        Path("/var/lib/vigil/objects")
    )
    assert parse_store_url("file:///var/lib/vigil/o%20b", {}) == LocalSpec(
        Path("/var/lib/vigil/o b")
    )
    assert parse_store_url("relative/dir", {}) == LocalSpec(Path("relative/dir"))


def test_s3_url_with_query_parameters():
    spec = parse_store_url(
        "s3://segments?endpoint=http://10.0.0.5:8333&access_key=AK&secret_key=SK"
        "&region=cn-gansu-1&multipart_threshold_mib=16&part_size_mib=5",
        {"AWS_SECRET_ACCESS_KEY": "from-env"},
    )
    assert spec == S3Spec(
        bucket="segments",
        endpoint_url="http://10.0.0.5:8333",
        access_key="AK",
        secret_key="SK",
        region="cn-gansu-1",
        multipart_threshold=16 * MIB,
        part_size=5 * MIB,
    )
    assert "SK" not in repr(spec)


def test_s3_url_falls_back_to_aws_environment():
    env = {
        "AWS_ENDPOINT_URL_S3": "https://s3.example.org",
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "SK",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    spec = parse_store_url("s3://segments", env)
    assert isinstance(spec, S3Spec)
    assert (spec.endpoint_url, spec.access_key, spec.secret_key, spec.region) == (
        "https://s3.example.org",
        "AK",
        "SK",
        "eu-west-1",
    )
    assert spec.multipart_threshold == 8 * MIB and spec.part_size == 8 * MIB


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ftp://host/x", "scheme"),
        ("s3://", "no bucket"),
        ("s3://bucket/path", "bucket as the host"),
        ("s3://bucket?secret=x", "unknown parameter"),
        ("s3://bucket?region=a&region=b", "given twice"),
        ("s3://bucket?endpoint=ftp://x", "not http"),
        ("s3://bucket?part_size_mib=zero", "not a number"),
        ("s3://bucket?multipart_threshold_mib=-1", "positive"),
        ("file://otherhost/x", "remote file hosts"),
    ],
)
def test_bad_urls_are_refused_clearly(url, message):
    with pytest.raises(ValueError, match=message):
        parse_store_url(url, {})


def test_bad_urls_never_echo_secrets():
    with pytest.raises(ValueError) as info:
        parse_store_url("s3://b?secret_key=TOPSECRET&nonsense=1", {})
    assert "TOPSECRET" not in str(info.value)
    with pytest.raises(ValueError) as info:
        parse_store_url("ftp://user:TOPSECRET@host/x", {})
    assert "TOPSECRET" not in str(info.value)


def test_redaction():
    assert redact_store_url("s3://b?endpoint=http://h:1&access_key=AK&secret_key=SK") == (
        "s3://b?endpoint=http://h:1&access_key=***&secret_key=***"
    )
    assert redact_store_url("http://u:p@host/x") == "http://***@host/x"


def test_bad_s3_settings_are_refused():
    with pytest.raises(ValueError, match="bucket name"):
        S3ObjectStore("http://127.0.0.1:1", "Bad_Bucket", "a", "b")
    with pytest.raises(ValueError, match="5 MiB"):
        S3ObjectStore("http://127.0.0.1:1", "bucket", "a", "b", part_size=MIB)
    with pytest.raises(ValueError, match="5 MiB"):
        open_store("s3://bucket?part_size_mib=1", env={})  # parses, then refused by the store


def test_open_store_round_trips(tmp_path: Path, seaweedfs: Any):
    src = tmp_path / "seg.ts"
    src.write_bytes(b"segment")
    sha = hashlib.sha256(b"segment").hexdigest()
    local = open_store(f"file://{tmp_path / 'objects'}")
    assert isinstance(local, LocalObjectStore)
    bucket = seaweedfs.new_bucket_name()
    s3 = open_store(
        f"s3://{bucket}?endpoint={seaweedfs.endpoint_url}&access_key={seaweedfs.access_key}",
        env={"AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key},
    )
    assert isinstance(s3, S3ObjectStore) and s3.bucket == bucket
    assert seaweedfs.secret_key not in repr(s3)
    for store in (local, s3):
        store.put_file("a/b/c.ts", src, sha)
        assert store.read_bytes("a/b/c.ts") == b"segment"
