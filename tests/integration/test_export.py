"""Evidence exports end to end: real catalog (SQLite), real local object store, the sharing
services, and `vigil-controller verify-export` run as an operator would, on intact and tampered
files."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from controller.__main__ import main
from controller.audit.log import AuditLog
from controller.catalog import Catalog, SegmentRow, make_engine
from controller.clock import ManualClock
from controller.exports.bundle import ExportError
from controller.exports.service import ExportService
from controller.grants.access import AccessRequest
from controller.grants.errors import GrantRefused, Reason
from controller.grants.keys import EVIDENCE, ensure_keys, keys_dir, load_keys
from controller.grants.mint import GrantRequest
from controller.grants.model import HOUR_US, CameraInfo, Operation
from controller.grants.policy import Role, User, camera_info, default_policy
from controller.grants.service import GrantService
from controller.playback.service import PlaybackService
from controller.storage import LocalObjectStore, object_key

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SEG_US = 10_000_000
OFFICER = User("officer-1", "chengxian", Role.OPERATOR)


class World:
    """A controller's sharing side on real storage: catalog, objects, audit, services."""

    def __init__(self, root: Path, db_url: str | None = None) -> None:
        self.data = root / "data"
        ensure_keys(self.data)
        self.keys = load_keys(self.data)
        self.clock = ManualClock(T0 + 3 * HOUR_US)
        self.engine = make_engine(db_url or f"sqlite:///{self.data / 'catalog.db'}")
        self.catalog = Catalog(self.engine, self.clock)
        self.store = LocalObjectStore(root / "objects")
        self.policy = default_policy()
        self.audit = AuditLog(self.engine, self.clock, self.keys.evidence, checkpoint_every=16)
        self.grants = GrantService(self.engine, self.clock, self.keys, self.policy, self.audit)
        self.playback = PlaybackService(self.grants)
        self.exports = ExportService(self.grants)
        self.catalog.upsert_device("dev-cx", "成县", "site-01", "nvr")
        self.catalog.upsert_camera("cam-01", "dev-cx", resource_class="II")
        self.catalog.upsert_device("dev-wd", "武都区", "site-09", "nvr")
        self.catalog.upsert_camera("wd-01", "dev-wd", resource_class="III")
        self._prev: dict[str, str] = {}
        self._tmp = root

    def add_footage(self, camera_id: str, start_us: int, n: int) -> list[SegmentRow]:
        cam = self.catalog.camera(camera_id)
        assert cam is not None
        rows = []
        for i in range(n):
            start = start_us + i * SEG_US
            sid = f"{camera_id}-{start // 1_000_000}"
            data = f"{sid} MPEG-TS payload ".encode() * 50
            digest = hashlib.sha256(data).hexdigest()
            key = object_key(cam.county, cam.site, camera_id, start, sid)
            path = self._tmp / "upload.bin"
            path.write_bytes(data)
            self.store.put_file(key, path, digest)
            row = SegmentRow(
                segment_id=sid,
                camera_id=camera_id,
                device_id=cam.device_id,
                start_us=start,
                duration_us=SEG_US,
                end_us=start + SEG_US,
                size_bytes=len(data),
                sha256=digest,
                prev_sha256=self._prev.get(camera_id, ""),
                object_key=key,
            )
            self._prev[camera_id] = digest
            rows.append(row)
        self.catalog.add_segments(rows)
        return rows

    def camera(self, camera_id: str) -> CameraInfo:
        cam = self.catalog.camera(camera_id)
        assert cam is not None
        return camera_info(self.policy, camera_id, cam.county, cam.site, cam.resource_class)

    def segments(self, camera_id: str, lo: int, hi: int) -> list[SegmentRow]:
        return self.catalog.segments_in_range(camera_id, lo, hi)

    def open_segment(self, seg: SegmentRow) -> BinaryIO:
        return self.store.open_read(seg.object_key)

    def mint(self, ops: set[Operation], who: User = OFFICER, **kw: object) -> str:
        values: dict[str, object] = dict(
            holder_org=who.org_id,
            holder_user=who.user_id,
            operations=frozenset(ops),
            footage_from_us=T0,
            footage_to_us=T0 + 2 * HOUR_US,
            purpose="incident 17 review",
            camera_ids=frozenset({"cam-01"}),
            case_id="CX-2026-017",
            watermark_id="wm-officer-1",
        )
        values.update(kw)
        return self.grants.mint(who, GrantRequest(**values), {"cam-01": self.camera("cam-01")})  # type: ignore[arg-type]

    def request(self, op: Operation, lo: int, hi: int, camera: str = "cam-01") -> AccessRequest:
        return AccessRequest(op, self.camera(camera), lo, hi, OFFICER.org_id, OFFICER.user_id)

    def export(self, token: str, lo: int, hi: int, out: Path) -> Path:
        req = self.request(Operation.DOWNLOAD, lo, hi)
        return self.exports.export(
            token,
            req,
            OFFICER,
            self.segments,
            self.open_segment,  # type: ignore[arg-type]
            out,
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    w.add_footage("cam-01", T0, 12)  # 2 minutes of 10 s segments
    yield w
    w.engine.dispose()


def verify_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        code = main(["verify-export", *argv])
    return code, out.getvalue()


def rewrite(src: Path, dst: Path, change) -> None:
    """Copy the tar member by member, letting `change(name, data)` alter/drop members."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        members = [(m, tin.extractfile(m).read()) for m in tin]  # type: ignore[union-attr]
        for member, data in change(members):
            member.size = len(data)
            tout.addfile(member, io.BytesIO(data))


def test_export_verifies_with_only_the_public_key(world: World, tmp_path: Path) -> None:
    token = world.mint({Operation.DOWNLOAD})
    path = world.export(token, T0 + 20 * SEG_US // 10, T0 + 60 * SEG_US // 10, tmp_path / "out")
    pub = keys_dir(world.data) / f"{EVIDENCE}.pub"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller",
            "verify-export",
            str(path),
            "--public-key",
            str(pub),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["segments"] == report["verified"] == 4
    m = report["manifest"]
    assert (m["camera_id"], m["watermark_id"], m["case_id"]) == (
        "cam-01",
        "wm-officer-1",
        "CX-2026-017",
    )
    assert m["requested_by"] == "officer-1" and len(m["grant_chain"]) == 1
    download = world.audit.search(action="download")
    assert download and download[0].outcome == "ok" and download[0].case_id == "CX-2026-017"


def test_single_use_download_cannot_be_reused(world: World, tmp_path: Path) -> None:
    token = world.mint({Operation.DOWNLOAD})
    world.export(token, T0, T0 + 30 * SEG_US // 10, tmp_path / "out")
    with pytest.raises(GrantRefused) as info:
        world.export(token, T0, T0 + 30 * SEG_US // 10, tmp_path / "out")
    assert info.value.reason is Reason.USES_EXHAUSTED
    assert len(list((tmp_path / "out").iterdir())) == 1
    refused = world.audit.search(action="download")[0]
    assert (refused.outcome, refused.reason) == ("refused", "uses_exhausted")


def test_download_needs_the_download_operation(world: World, tmp_path: Path) -> None:
    token = world.mint({Operation.PLAYBACK})
    with pytest.raises(GrantRefused) as info:
        world.export(token, T0, T0 + HOUR_US, tmp_path / "out")
    assert info.value.reason is Reason.OPERATION_NOT_GRANTED
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("alter", "ALTERED"),
        ("drop", "MISSING"),
        ("swap", "REORDERED"),
        ("manifest", "INVALID"),
        ("extra", "EXTRA"),
    ],
)
def test_tampered_exports_are_reported(
    world: World, tmp_path: Path, tamper: str, expected: str
) -> None:
    token = world.mint({Operation.DOWNLOAD})
    path = world.export(token, T0, T0 + 4 * SEG_US, tmp_path / "out")
    bad = tmp_path / "bad.tar"

    def change(members):
        segs = [i for i, (m, _) in enumerate(members) if m.name.startswith("segments/")]
        if tamper == "alter":
            m, data = members[segs[1]]
            members[segs[1]] = (m, data[:-1] + b"X")
        elif tamper == "drop":
            del members[segs[2]]
        elif tamper == "swap":
            (ma, da), (mb, db) = members[segs[0]], members[segs[1]]
            members[segs[0]], members[segs[1]] = (ma, db), (mb, da)
        elif tamper == "manifest":
            m, data = members[0]
            members[0] = (m, data.replace(b"wm-officer-1", b"wm-officer-2"))
        else:
            extra = tarfile.TarInfo("segments/999999_smuggled.ts")
            members.append((extra, b"smuggled"))
        return members

    rewrite(path, bad, change)
    code, out = verify_cli(str(bad), "--data-dir", str(world.data))
    assert code == 1
    assert expected in out and "FAILED" in out
    code, out = verify_cli(str(path), "--data-dir", str(world.data))
    assert code == 0 and "OK: authentic and complete" in out


def test_garbage_files_and_wrong_keys(world: World, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x00garbage" * 100)
    code, out = verify_cli(str(junk), "--data-dir", str(world.data))
    assert code == 1 and "not a readable export archive" in out
    code, _ = verify_cli(str(tmp_path / "missing.tar"), "--data-dir", str(world.data))
    assert code == 1
    token = world.mint({Operation.DOWNLOAD})
    path = world.export(token, T0, T0 + 2 * SEG_US, tmp_path / "out")
    other = tmp_path / "other"
    ensure_keys(other)
    code, out = verify_cli(str(path), "--data-dir", str(other))
    assert code == 1 and "not by the key given" in out
    bad_key = tmp_path / "bad.pub"
    bad_key.write_text("zz")
    assert verify_cli(str(path), "--public-key", str(bad_key))[0] == 2
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as tar:
        sym = tarfile.TarInfo("manifest.json")
        sym.type = tarfile.SYMTYPE
        sym.linkname = "/etc/passwd"
        tar.addfile(sym)
    code, out = verify_cli(str(link), "--data-dir", str(world.data))
    assert code == 1 and "not a regular file" in out


def test_corrupt_stored_segment_stops_the_export(world: World, tmp_path: Path) -> None:
    seg = world.segments("cam-01", T0, T0 + SEG_US)[0]
    stored = world.store.root.joinpath(*seg.object_key.split("/"))
    stored.write_bytes(stored.read_bytes()[:-3] + b"bad")
    token = world.mint({Operation.DOWNLOAD})
    with pytest.raises(ExportError, match="do not match the catalog SHA-256"):
        world.export(token, T0, T0 + 2 * SEG_US, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # no partial file left behind
    failed = world.audit.search(action="download")[0]
    assert failed.outcome == "failed"
