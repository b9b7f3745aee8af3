"""`retention-sweep` and `storage-orphans` on a controller data directory (SQLite + local dir)."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pytest

from controller.catalog import Catalog, SegmentRow, make_engine
from controller.clock import SystemClock
from controller.retention import DAY_US, cli
from controller.storage import LocalObjectStore, object_key


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir holding 10 segments that ended 40..31 days ago and 1 from today."""
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog = Catalog(engine, SystemClock())
    store = LocalObjectStore(tmp_path / "objects")
    catalog.upsert_device("dev1", "wudu", "v001", "nvr")
    catalog.upsert_camera("cam1", "dev1")
    now = SystemClock().now_us()
    rows = []
    for n, days in enumerate([*range(40, 30, -1), 0]):
        end = now - days * DAY_US
        start = end - 10_000_000
        src = tmp_path / "seg.ts"
        src.write_bytes(f"segment {n}".encode())
        sha = hashlib.sha256(src.read_bytes()).hexdigest()
        key = object_key("wudu", "v001", "cam1", start, f"s{n}")
        store.put_file(key, src, sha)
        rows.append(
            SegmentRow(
                segment_id=f"s{n}",
                camera_id="cam1",
                device_id="dev1",
                start_us=start,
                duration_us=10_000_000,
                end_us=end,
                size_bytes=src.stat().st_size,
                sha256=sha,
                object_key=key,
            )
        )
    catalog.add_segments(rows)
    engine.dispose()
    return tmp_path


def test_dry_run_changes_nothing_then_sweep_deletes(data_dir: Path, capsys):
    objects = sorted((data_dir / "objects").rglob("*.ts"))
    assert len(objects) == 11
    assert run(["retention-sweep", "--data-dir", str(data_dir), "--dry-run"]) == 0
    assert "cam1: would delete 10, held 0, chain anchors 0" in capsys.readouterr().out
    assert sorted((data_dir / "objects").rglob("*.ts")) == objects
    assert run(["retention-sweep", "--data-dir", str(data_dir)]) == 0
    assert "deleted 10 segments" in capsys.readouterr().out
    assert len(list((data_dir / "objects").rglob("*.ts"))) == 1
    assert run(["storage-orphans", "--data-dir", str(data_dir), "--camera", "cam1"]) == 0
    assert capsys.readouterr().out == ""


def test_orphan_audit_reports_lost_objects(data_dir: Path, capsys):
    survivor = next((data_dir / "objects").rglob("*.ts"))
    survivor.unlink()
    assert run(["storage-orphans", "--data-dir", str(data_dir), "--camera", "cam1"]) == 1
    assert "ROW WITHOUT OBJECT (lost data)" in capsys.readouterr().out


def test_bad_arguments_are_refused(data_dir: Path):
    assert run(["retention-sweep", "--data-dir", str(data_dir), "--batch", "0"]) == 2
    assert run(["retention-sweep"]) == 2  # neither --config nor --data-dir
    assert run(["storage-orphans", "--data-dir", str(data_dir), "--camera", "nope"]) == 1


def test_storage_sweep_reports_then_deletes_stray_objects_audited(data_dir: Path, capsys):
    """`storage-sweep`: a dry run by default; `--apply` deletes the object no row names (past
    the grace period), records it and appends a `storage_sweep` audit event."""
    import os

    from controller.audit.log import search
    from controller.grants.keys import ensure_keys

    src = data_dir / "stray.ts"
    src.write_bytes(b"stray")
    key = object_key("wudu", "v001", "cam1", SystemClock().now_us(), "stray")
    store = LocalObjectStore(data_dir / "objects")
    store.put_file(key, src, hashlib.sha256(b"stray").hexdigest())
    old = SystemClock().now_us() / 1e6 - 120
    os.utime(store.root.joinpath(*key.split("/")), (old, old))
    base = ["storage-sweep", "--data-dir", str(data_dir), "--grace-s", "60"]
    assert run(base) == 0
    out = capsys.readouterr().out
    assert f"would delete (dry run; --apply deletes): {key}" in out
    assert "unreferenced past the grace period: 1 (5 bytes)" in out
    assert key in set(store.list_keys())
    assert run([*base, "--apply"]) == 2  # no evidence key to audit with: nothing deleted
    assert key in set(store.list_keys())
    ensure_keys(data_dir)
    assert run([*base, "--grace-s", "600", "--apply"]) == 0  # too young for this grace
    assert key in set(store.list_keys()) and "deleted:" not in capsys.readouterr().out
    assert run([*base, "--apply"]) == 0
    assert f"deleted: {key}" in capsys.readouterr().out
    assert key not in set(store.list_keys())
    assert len(list((data_dir / "objects").rglob("*.ts"))) == 11  # every row's object stays
    engine = make_engine(f"sqlite:///{data_dir / 'catalog.db'}")
    try:
        events = search(engine, action="storage_sweep")
        assert [e.action for e in events] == ["storage_sweep"]
        assert key in events[0].detail
    finally:
        engine.dispose()
