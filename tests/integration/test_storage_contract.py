"""The ObjectStore contract, run against both backends: a local directory and S3 (SeaweedFS)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, cast

import pytest
from botocore.exceptions import EndpointConnectionError

from controller.storage import (
    InvalidKeyError,
    LocalObjectStore,
    ObjectNotFoundError,
    ObjectStore,
    S3ObjectStore,
    StorageError,
    object_key,
)
from controller.storage.base import put_owned_file
from tests.support import wait_until

MIB = 1024 * 1024
KEY = "wudu/v001/cam1/2026/01/01/00/seg-0001.ts"
BAD_KEYS = [
    "",
    "/abs/key.ts",
    "../escape.ts",
    "a/../../escape.ts",
    "a/./b.ts",
    "a//b.ts",
    "a/b/",
    ".hidden",
    "a/.tmp-x",
    "a\\b.ts",
    "a/b\x00c.ts",
    "a/b\nc.ts",
    "x" * 300,
    "a/" * 600 + "b",
]


def make_s3_store(seaweedfs: Any, **kwargs: Any) -> S3ObjectStore:
    return S3ObjectStore(
        seaweedfs.endpoint_url,
        seaweedfs.new_bucket_name(),
        seaweedfs.access_key,
        seaweedfs.secret_key,
        multipart_threshold=kwargs.pop("multipart_threshold", 1 * MIB),
        part_size=kwargs.pop("part_size", 5 * MIB),
        **kwargs,
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return make_s3_store(request.getfixturevalue("seaweedfs"))


def write_file(path: Path, data: bytes) -> tuple[Path, str]:
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def all_keys(store: ObjectStore) -> list[str]:
    return sorted(store.list_keys())


def test_put_get_size_head_delete_list(store: ObjectStore, tmp_path: Path):
    data = os.urandom(100_000)
    src, sha = write_file(tmp_path / "seg.ts", data)
    assert store.size(KEY) is None and store.head(KEY) is None
    store.put_file(KEY, src, sha)
    assert store.read_bytes(KEY) == data
    with store.open_read(KEY) as f:
        assert f.read(10) == data[:10]
        assert f.read() == data[10:]
    assert store.size(KEY) == len(data)
    info = store.head(KEY)
    assert info is not None and info.size == len(data) and info.sha256_hex == sha
    other = "wudu/v001/cam1/2026/01/01/01/seg-0002.ts"
    store.put_file(other, src, sha)
    assert all_keys(store) == [KEY, other]
    assert sorted(store.list_keys("wudu/v001/cam1/2026/01/01/0")) == [KEY, other]
    assert list(store.list_keys("wudu/v001/cam1/2026/01/01/01/")) == [other]
    assert list(store.list_keys("wudu/v001/cam2")) == []
    assert list(store.list_keys("nowhere/at/all/")) == []
    store.delete(KEY)
    store.delete(KEY)  # idempotent
    assert store.size(KEY) is None
    assert all_keys(store) == [other]
    with pytest.raises(ObjectNotFoundError, match=KEY):
        store.open_read(KEY)
    with pytest.raises(ObjectNotFoundError):
        store.read_bytes(KEY)


def test_put_replaces_an_existing_object(store: ObjectStore, tmp_path: Path):
    first, sha1 = write_file(tmp_path / "a", b"first version")
    second, sha2 = write_file(tmp_path / "b", b"second")
    store.put_file(KEY, first, sha1)
    store.put_file(KEY, second, sha2)
    assert store.read_bytes(KEY) == b"second"
    info = store.head(KEY)
    assert info is not None and info.sha256_hex == sha2
    assert all_keys(store) == [KEY]


def test_large_file_goes_up_in_parts(store: ObjectStore, tmp_path: Path):
    data = os.urandom(11 * MIB + 123)  # 3 parts of 5 MiB on S3
    src, sha = write_file(tmp_path / "big.ts", data)
    store.put_file(KEY, src, sha)
    assert store.size(KEY) == len(data)
    assert hashlib.sha256(store.read_bytes(KEY)).hexdigest() == sha
    info = store.head(KEY)
    assert info is not None and info.sha256_hex == sha
    if isinstance(store, S3ObjectStore):
        head = store._client.head_object(Bucket=store.bucket, Key=KEY)
        assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag: 3 parts
        assert head["ContentType"] == "video/mp2t"


@pytest.mark.parametrize("bad_key", BAD_KEYS)
def test_bad_keys_are_refused_and_change_nothing(store: ObjectStore, tmp_path: Path, bad_key):
    src, sha = write_file(tmp_path / "seg.ts", b"payload")
    with pytest.raises(InvalidKeyError):
        store.put_file(bad_key, src, sha)
    for op in (store.open_read, store.read_bytes, store.size, store.head, store.delete):
        with pytest.raises(InvalidKeyError):
            op(bad_key)
    with pytest.raises(InvalidKeyError):
        store.presigned_get(bad_key, 60)
    assert all_keys(store) == []
    if isinstance(store, LocalObjectStore):
        outside = [p for p in tmp_path.rglob("*") if p.name not in ("seg.ts", "objects")]
        assert outside == []


def test_bad_prefix_and_bad_hash_are_refused(store: ObjectStore, tmp_path: Path):
    with pytest.raises(InvalidKeyError):
        list(store.list_keys("../"))
    src, _ = write_file(tmp_path / "seg.ts", b"payload")
    for bad_sha in ("", "abc", "G" * 64, "A" * 64):
        with pytest.raises(StorageError, match="sha256"):
            store.put_file(KEY, src, bad_sha)
    assert all_keys(store) == []


def test_failed_put_of_missing_source_leaves_nothing(store: ObjectStore, tmp_path: Path):
    with pytest.raises(StorageError, match=f"put {KEY}"):
        store.put_file(KEY, tmp_path / "no-such-file", "0" * 64)
    with pytest.raises(StorageError):
        store.put_file(KEY, tmp_path, "0" * 64)  # a directory: unreadable as a file
    assert all_keys(store) == []
    assert store.size(KEY) is None


def test_local_put_is_atomic_and_temp_files_stay_invisible(tmp_path: Path):
    store = LocalObjectStore(tmp_path / "objects")
    old, old_sha = write_file(tmp_path / "old", b"old object")
    store.put_file(KEY, old, old_sha)
    # a writer killed mid-copy leaves a hidden temp file: nobody sees it as an object
    hour_dir = (tmp_path / "objects").joinpath(*KEY.split("/")[:-1])
    (hour_dir / ".tmp-crashed").write_bytes(b"half a segm")
    assert all_keys(store) == [KEY]
    # a failed replacement (source vanished) keeps the old object whole
    with pytest.raises(StorageError):
        store.put_file(KEY, tmp_path / "vanished", old_sha)
    assert store.read_bytes(KEY) == b"old object"
    assert sorted(p.name for p in hour_dir.iterdir()) == [
        ".seg-0001.ts.sha256",
        ".tmp-crashed",
        "seg-0001.ts",
    ]


def test_local_delete_prunes_empty_directories(tmp_path: Path):
    store = LocalObjectStore(tmp_path / "objects")
    src, sha = write_file(tmp_path / "seg", b"x")
    keep = "wudu/v001/cam1/2026/01/01/05/keep.ts"
    store.put_file(KEY, src, sha)
    store.put_file(keep, src, sha)
    store.delete(KEY)
    assert not (tmp_path / "objects/wudu/v001/cam1/2026/01/01/00").exists()
    assert (tmp_path / "objects/wudu/v001/cam1/2026/01/01/05/keep.ts").exists()
    store.delete(keep)
    assert list((tmp_path / "objects").iterdir()) == []
    store.put_file(KEY, src, sha)  # the tree is re-created on demand
    assert store.read_bytes(KEY) == b"x"


class FailingClient:
    """The real boto3 client, except that `upload_part` fails from part `fail_at` on:
    a connection lost in the middle of a multipart upload."""

    def __init__(self, real: Any, fail_at: int) -> None:
        self._real = real
        self._fail_at = fail_at
        self.parts_sent = 0

    def upload_part(self, **kwargs: Any) -> Any:
        self.parts_sent += 1
        if self.parts_sent >= self._fail_at:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1/")
        return self._real.upload_part(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_s3_failed_multipart_put_leaves_no_object_and_no_parts(seaweedfs: Any, tmp_path: Path):
    real = seaweedfs.client()
    bucket = seaweedfs.new_bucket_name()
    failing = FailingClient(real, fail_at=2)
    store = S3ObjectStore(
        None,
        bucket,
        None,
        None,
        multipart_threshold=1 * MIB,
        part_size=5 * MIB,
        client=cast(Any, failing),
    )
    src, sha = write_file(tmp_path / "big.ts", os.urandom(11 * MIB))
    with pytest.raises(StorageError, match=f"put part 2 of {KEY}"):
        store.put_file(KEY, src, sha)
    assert failing.parts_sent == 2
    assert store.size(KEY) is None
    assert list(store.list_keys()) == []
    assert real.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s3_presigned_get_works_then_expires(seaweedfs: Any, tmp_path: Path):
    store = make_s3_store(seaweedfs)
    data = os.urandom(4096)
    src, sha = write_file(tmp_path / "seg.ts", data)
    store.put_file(KEY, src, sha)
    url = store.presigned_get(KEY, 1)
    assert url is not None and seaweedfs.secret_key not in url
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == data
        assert resp.headers["Content-Type"] == "video/mp2t"

    def expired() -> bool:
        try:
            urllib.request.urlopen(url, timeout=10).close()
        except urllib.error.HTTPError as exc:
            assert exc.code == 403, exc.code
            return True
        return False

    wait_until(expired, 15, "the presigned URL to expire", interval=0.2)
    forged = url.replace("X-Amz-Expires=1", "X-Amz-Expires=3600")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(forged, timeout=10)
    assert info.value.code == 403
    for bad in (0, -5, 8 * 24 * 3600):
        with pytest.raises(StorageError, match="expiry"):
            store.presigned_get(KEY, bad)


def test_local_store_has_no_presigned_urls(tmp_path: Path):
    assert LocalObjectStore(tmp_path).presigned_get(KEY, 60) is None


def test_s3_bucket_is_created_on_first_write(seaweedfs: Any, tmp_path: Path):
    store = make_s3_store(seaweedfs)
    assert list(store.list_keys()) == []  # no bucket yet: simply empty
    assert store.size(KEY) is None
    store.delete(KEY)
    with pytest.raises(ObjectNotFoundError):
        store.read_bytes(KEY)
    src, sha = write_file(tmp_path / "seg.ts", b"abc")
    store.put_file(KEY, src, sha)
    buckets = [b["Name"] for b in seaweedfs.client().list_buckets()["Buckets"]]
    assert store.bucket in buckets


def test_s3_wrong_credentials_are_a_storage_error(seaweedfs: Any, tmp_path: Path):
    store = S3ObjectStore(
        seaweedfs.endpoint_url, seaweedfs.new_bucket_name(), seaweedfs.access_key, "wrong"
    )
    src, sha = write_file(tmp_path / "seg.ts", b"abc")
    with pytest.raises(StorageError) as info:
        store.put_file(KEY, src, sha)
    assert "wrong" not in str(info.value)


def test_s3_outage_is_a_storage_error_and_data_survives_a_restart(seaweedfs: Any, tmp_path: Path):
    store = make_s3_store(seaweedfs, connect_timeout=1, max_attempts=1)
    src, sha = write_file(tmp_path / "seg.ts", b"before the outage")
    store.put_file(KEY, src, sha)
    assert store.answers.recent(60)  # the store-health loop may skip its probe
    seaweedfs.stop()
    try:
        for op in (
            lambda: store.put_file(KEY, src, sha),
            lambda: store.read_bytes(KEY),
            lambda: store.size(KEY),
            lambda: store.delete(KEY),
            lambda: list(store.list_keys()),
        ):
            with pytest.raises(StorageError, match="EndpointConnectionError"):
                op()
        assert not store.answers.recent(60)  # a failure since: the loop probes again
        assert store.presigned_get(KEY, 60)  # computed here: no evidence that the store is up
        assert not store.answers.recent(60)
    finally:
        seaweedfs.start()
    assert store.read_bytes(KEY) == b"before the outage"
    assert store.answers.recent(60)
    store.answers.failed()
    data = b"streamed after the outage"
    put = store.open_put(KEY, len(data), hashlib.sha256(data).hexdigest())
    put.write(data)
    put.finish()
    assert store.answers.recent(60)  # a streamed PUT's answer counts as well


# --- handing a finished file over (put_owned_file / LocalObjectStore.adopt_file) -----------


def test_an_owned_file_is_stored_by_every_backend(store: ObjectStore, tmp_path: Path):
    data = os.urandom(300_000)
    src, sha = write_file(tmp_path / "seg.ts", data)
    put_owned_file(store, KEY, src, sha)
    assert store.read_bytes(KEY) == data
    info = store.head(KEY)
    assert info is not None and info.size == len(data) and info.sha256_hex == sha
    assert all_keys(store) == [KEY]
    other, sha2 = write_file(tmp_path / "seg2.ts", b"replacement")
    put_owned_file(store, KEY, other, sha2)  # replaces, like put_file
    assert store.read_bytes(KEY) == b"replacement"
    info = store.head(KEY)
    assert info is not None and info.sha256_hex == sha2


def test_local_adopt_links_the_file_and_keeps_the_hash_on_the_inode(tmp_path: Path):
    store = LocalObjectStore(tmp_path / "objects")
    data = os.urandom(200_000)
    src, sha = write_file(tmp_path / "seg.ts", data)
    store.adopt_file(KEY, src, sha)
    stored = (tmp_path / "objects").joinpath(*KEY.split("/"))
    assert stored.stat().st_ino == src.stat().st_ino  # no byte copied
    assert src.exists() and src.stat().st_nlink == 2  # the caller deletes its own name
    assert os.getxattr(stored, "user.vigil.sha256") == sha.encode()
    assert sorted(p.name for p in stored.parent.iterdir()) == ["seg-0001.ts"]  # no sidecar
    src.unlink()
    assert store.read_bytes(KEY) == data
    info = store.head(KEY)
    assert info is not None and info.sha256_hex == sha


def test_local_adopt_and_put_replace_each_other_with_the_right_hash(tmp_path: Path):
    store = LocalObjectStore(tmp_path / "objects")
    hour_dir = (tmp_path / "objects").joinpath(*KEY.split("/")[:-1])
    copied, sha1 = write_file(tmp_path / "a", b"put by copy")
    store.put_file(KEY, copied, sha1)
    adopted, sha2 = write_file(tmp_path / "b", b"adopted")
    store.adopt_file(KEY, adopted, sha2)
    info = store.head(KEY)
    assert info is not None and info.sha256_hex == sha2 and store.read_bytes(KEY) == b"adopted"
    assert sorted(p.name for p in hour_dir.iterdir()) == ["seg-0001.ts"]  # old sidecar gone
    store.put_file(KEY, copied, sha1)
    info = store.head(KEY)
    assert info is not None and info.sha256_hex == sha1 and store.read_bytes(KEY) == b"put by copy"
    assert os.getxattr(adopted, "user.vigil.sha256") == sha2.encode()  # not the new object


def test_local_adopt_from_another_filesystem_copies(tmp_path: Path):
    if not Path("/dev/shm").is_dir():
        pytest.fail("needs /dev/shm (a tmpfs, another filesystem than the test's tmp dir)")
    elsewhere = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        assert elsewhere.stat().st_dev != tmp_path.stat().st_dev
        src, sha = write_file(elsewhere / "seg.ts", b"on tmpfs")
        store = LocalObjectStore(tmp_path / "objects")
        store.adopt_file(KEY, src, sha)
        stored = (tmp_path / "objects").joinpath(*KEY.split("/"))
        assert stored.stat().st_ino != src.stat().st_ino and store.read_bytes(KEY) == b"on tmpfs"
        info = store.head(KEY)
        assert info is not None and info.sha256_hex == sha
    finally:
        shutil.rmtree(elsewhere)


def test_local_adopt_without_user_xattrs_writes_the_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def unsupported(*_args: Any) -> None:
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", unsupported)
    store = LocalObjectStore(tmp_path / "objects")
    src, sha = write_file(tmp_path / "seg.ts", b"no xattrs here")
    store.adopt_file(KEY, src, sha)
    hour_dir = (tmp_path / "objects").joinpath(*KEY.split("/")[:-1])
    assert sorted(p.name for p in hour_dir.iterdir()) == [".seg-0001.ts.sha256", "seg-0001.ts"]
    info = store.head(KEY)
    assert info is not None and info.sha256_hex == sha


def test_local_adopt_refuses_bad_input_and_changes_nothing(tmp_path: Path):
    store = LocalObjectStore(tmp_path / "objects")
    src, sha = write_file(tmp_path / "seg.ts", b"payload")
    for bad_key in ("../escape.ts", "a/.tmp-x", ""):
        with pytest.raises(InvalidKeyError):
            store.adopt_file(bad_key, src, sha)
    for bad_sha in ("", "A" * 64, "abc"):
        with pytest.raises(StorageError, match="sha256"):
            store.adopt_file(KEY, src, bad_sha)
    with pytest.raises(StorageError, match=f"adopt {KEY}"):
        store.adopt_file(KEY, tmp_path / "no-such-file", sha)
    (tmp_path / "a-dir").mkdir()
    with pytest.raises(StorageError, match="not a regular file"):
        store.adopt_file(KEY, tmp_path / "a-dir", sha)
    assert all_keys(store) == []
    assert src.stat().st_nlink == 1
    with pytest.raises(OSError):
        os.getxattr(src, "user.vigil.sha256")  # refused before anything was touched


def test_local_adopt_leaves_no_temp_files_when_the_tree_cannot_be_made(tmp_path: Path):
    (tmp_path / "objects").write_bytes(b"not a directory")
    store = LocalObjectStore(tmp_path / "objects")
    src, sha = write_file(tmp_path / "seg.ts", b"payload")
    with pytest.raises(StorageError, match=f"adopt {KEY}"):
        store.adopt_file(KEY, src, sha)
    assert (tmp_path / "objects").read_bytes() == b"not a directory"
    assert src.stat().st_nlink == 1


def test_object_key_layout():
    start = 1_767_225_600_000_000 + (13 * 3600 + 59 * 60) * 1_000_000  # 2026-01-01 13:59 UTC
    assert object_key("wudu", "v001", "cam1", start, "seg-1") == (
        "wudu/v001/cam1/2026/01/01/13/seg-1.ts"
    )
    assert (
        object_key("武都区", "村", "cam", 0, "s", ext="mp4") == "武都区/村/cam/1970/01/01/00/s.mp4"
    )
    for args in [
        ("..", "v", "c", 0, "s"),
        ("w", "a/b", "c", 0, "s"),
        ("w", "v", "", 0, "s"),
        ("w", "v", "c", -1, "s"),
        ("w", "v", "c", 0, ""),
        ("w", "v", "c", 0, "../s"),
        ("w", "v", "c", 0, ".s"),
        ("w", "v", "c\n", 0, "s"),
    ]:
        with pytest.raises(InvalidKeyError):
            object_key(*args)
    with pytest.raises(InvalidKeyError):
        object_key("w", "v", "c", 0, "s", ext="t/s")
