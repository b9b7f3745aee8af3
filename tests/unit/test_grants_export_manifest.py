"""Export manifests: signed, and verifiable file by file from digests alone."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.exports.manifest import (
    ExportInfo,
    FileDigest,
    build_manifest,
    sign_manifest,
    verify_export,
)
from controller.grants.codec import key_id, raw_public_key

KEY = Ed25519PrivateKey.generate()
PUB = raw_public_key(KEY)
INFO = ExportInfo(
    "e1",
    "cam-1",
    "陇南市/成县/s/cam-1",
    0,
    40,
    "a" * 32,
    ("a" * 32,),
    "wm-9",
    "case-1",
    "p",
    "u1",
    "chengxian",
    5,
)


def segments(n: int = 4, break_at: int | None = None):
    out = []
    prev = ""
    for i in range(n):
        data = f"segment-{i}".encode()
        sha = hashlib.sha256(data).hexdigest()
        recorded_prev = "0" * 64 if i == break_at else prev
        out.append((data, _S(f"s{i}", i * 10, (i + 1) * 10, len(data), sha, recorded_prev)))
        prev = sha
    return out


class _S:
    def __init__(self, sid, start, end, size, sha, prev) -> None:
        self.segment_id, self.start_us, self.end_us = sid, start, end
        self.size_bytes, self.sha256, self.prev_sha256 = size, sha, prev


def export(n: int = 4, break_at: int | None = None):
    segs = segments(n, break_at)
    manifest = build_manifest(INFO, [s for _, s in segs], key_id(PUB))
    sig = sign_manifest(manifest, KEY)
    names = [e["file"] for e in json.loads(manifest)["segments"]]
    files = {
        name: FileDigest(hashlib.sha256(d).hexdigest(), len(d))
        for name, (d, _) in zip(names, segs, strict=True)
    }
    return manifest, sig, files, names


def test_an_intact_export_verifies() -> None:
    manifest, sig, files, order = export()
    report = verify_export(manifest, sig, PUB, files, order)
    assert report.ok and report.verified == 4 and report.signature_ok
    assert report.manifest["watermark_id"] == "wm-9" and report.manifest["grant_id"] == "a" * 32


def test_altered_missing_reordered_and_extra_files() -> None:
    manifest, sig, files, order = export()
    altered = dict(files)
    altered[order[1]] = FileDigest("f" * 64, 9)
    kinds = {p.kind for p in verify_export(manifest, sig, PUB, altered, order).problems}
    assert kinds == {"altered"}
    missing = {k: v for k, v in files.items() if k != order[2]}
    report = verify_export(manifest, sig, PUB, missing, order)
    assert [p.kind for p in report.problems] == ["missing"] and not report.ok
    swapped = dict(files)
    swapped[order[0]], swapped[order[3]] = files[order[3]], files[order[0]]
    report = verify_export(manifest, sig, PUB, swapped, order)
    assert [p.kind for p in report.problems] == ["reordered", "reordered"]
    shuffled = [order[1], order[0], *order[2:]]
    assert [p.kind for p in verify_export(manifest, sig, PUB, files, shuffled).problems] == [
        "reordered"
    ]
    extra = {**files, "segments/999999_x.ts": FileDigest("0" * 64, 1)}
    assert [p.kind for p in verify_export(manifest, sig, PUB, extra, order).problems] == ["extra"]


def test_an_edited_manifest_or_another_key_fails_the_signature() -> None:
    manifest, sig, files, order = export()
    edited = manifest.replace(b"wm-9", b"wm-0")
    report = verify_export(edited, sig, PUB, files, order)
    assert not report.signature_ok and report.problems[0].kind == "signature"
    other = raw_public_key(Ed25519PrivateKey.generate())
    assert (
        "not by the key given"
        in verify_export(manifest, sig, other, files, order).problems[0].detail
    )


@pytest.mark.parametrize("sig", [b"", b"garbage", b"rsa 0 00", b"ed25519 x zz"])
def test_malformed_signature_files(sig: bytes) -> None:
    manifest, _, files, order = export()
    report = verify_export(manifest, sig, PUB, files, order)
    assert not report.ok and report.problems[0].kind == "signature"


def test_missing_or_garbage_manifest() -> None:
    _, sig, files, order = export()
    assert verify_export(None, sig, PUB, files, order).problems[0].kind == "manifest"
    garbage = b"not json"
    report = verify_export(garbage, sign_manifest(garbage, KEY), PUB, files, order)
    assert report.problems[-1].kind == "manifest" and not report.ok


def test_a_break_in_the_recorders_chain_is_reported_but_not_tampering() -> None:
    manifest, sig, files, order = export(break_at=2)
    report = verify_export(manifest, sig, PUB, files, order)
    assert [p.kind for p in report.problems] == ["source_gap"]
    assert report.ok
