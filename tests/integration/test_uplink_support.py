"""Helpers shared by the uplink's integration, end-to-end and rig tests (no tests in here).

An agent side (a real SegmentBuffer filled with segments, the real IngestClient and Uploader)
against a real controller (tests/integration/controller_proc.py), and the end-state checks the
transport must guarantee: every buffered segment stored exactly once, byte-identical, catalog
rows agreeing with storage, nothing marked uploaded that is not stored, chains intact.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from controller.catalog import Catalog, SegmentRow, make_engine
from controller.clock import SystemClock as ControllerClock
from controller.storage import ObjectStore, open_store
from edge_agent.clock import Clock, SystemClock
from edge_agent.config import UplinkConfig
from edge_agent.model import AgentEvent, SegmentInfo, SegmentState
from edge_agent.store import SegmentBuffer
from edge_agent.uplink import RetryPolicy, TokenBucket, Uploader, open_client
from tests.integration.controller_proc import (
    DeviceCreds,
    database_url,
    issue_device,
    prepare_data_dir,
    register,
)

SEGMENT_US = 10_000_000
FAST_RETRY = RetryPolicy(initial_s=0.1, cap_s=0.5, park_s=3600.0)
QUOTA = 1024**3


@dataclass(frozen=True)
class Site:
    """A controller data dir with PKI, one registered device and its cameras."""

    data_dir: Path
    device: DeviceCreds
    cameras: tuple[str, ...]


def make_site(tmp: Path, cameras: tuple[str, ...] = ("cam1", "cam2"), device: str = "dev1") -> Site:
    data_dir = tmp / "controller"
    prepare_data_dir(data_dir)
    register(data_dir, device, list(cameras))
    creds = issue_device(data_dir, device, tmp / f"{device}-certs")
    return Site(data_dir, creds, cameras)


def uplink_config(
    port: int, dev: DeviceCreds, rate_bps: int = 400_000_000, chunk_bytes: int = 64 * 1024
) -> UplinkConfig:
    return UplinkConfig(
        controller=f"127.0.0.1:{port}",
        ca_cert=str(dev.ca_path),
        client_cert=str(dev.cert_path),
        client_key=str(dev.key_path),
        rate_bps=rate_bps,
        chunk_bytes=chunk_bytes,
    )


def write_segments(
    buffer: SegmentBuffer,
    camera_id: str,
    count: int,
    size: int = 200_000,
    start_us: int | None = None,
    rng: random.Random | None = None,
    jitter: bool = True,
) -> list[SegmentInfo]:
    """Commit `count` back-to-back segments of random bytes (ingest does not parse them).

    Sizes vary by up to a quarter either way unless `jitter` is off (tests about the quota need
    exact sizes: three jittered 800 kB segments sum under 2 MB about one run in fifty)."""
    rng = rng or random.Random()
    if start_us is None:
        last = buffer.segments(camera_id=camera_id)
        start_us = last[-1].end_us if last else SystemClock().now_us() - 3600 * 1_000_000
    infos = []
    for i in range(count):
        tmp = buffer.temp_path(camera_id)
        n = max(1, size + rng.randint(-size // 4, size // 4)) if jitter else size
        tmp.write_bytes(rng.randbytes(n))
        infos.append(buffer.commit(camera_id, tmp, start_us + i * SEGMENT_US, SEGMENT_US))
    return infos


class Agent:
    """The agent's transport half in this process: buffer + client + uploader."""

    def __init__(
        self,
        buffer: SegmentBuffer,
        cfg: UplinkConfig,
        clock: Clock | None = None,
        policy: RetryPolicy = FAST_RETRY,
        concurrency: int = 1,
    ) -> None:
        self.clock = clock or SystemClock()
        self.buffer = buffer
        self.events: list[AgentEvent] = []
        self.bucket = TokenBucket(cfg.rate_bps, cfg.chunk_bytes, self.clock)
        self.client = open_client(cfg, self.clock, self.bucket)
        self.uploader = Uploader(
            buffer,
            self.client,
            self.clock,
            self.events.append,
            policy=policy,
            concurrency=concurrency,
            idle_poll_s=0.05,
        )

    def __enter__(self) -> Agent:
        self.uploader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uploader.stop()
        self.client.close()

    def unsent(self) -> int:
        return self.buffer.stats().unsent_segments


def open_catalog(data_dir: Path) -> tuple[Catalog, Engine]:
    engine = make_engine(database_url(data_dir))
    return Catalog(engine, ControllerClock()), engine


def catalog_rows(catalog: Catalog, cameras: tuple[str, ...]) -> dict[str, SegmentRow]:
    rows: dict[str, SegmentRow] = {}
    for camera in cameras:
        for row in catalog.segments_in_range(camera, 0, 2**62):
            rows[row.segment_id] = row
    return rows


def local_store(data_dir: Path) -> ObjectStore:
    return open_store(f"file://{data_dir / 'objects'}")


def verify_delivery(
    buffer: SegmentBuffer,
    catalog: Catalog,
    store: ObjectStore,
    cameras: tuple[str, ...],
    expect_all_uploaded: bool = True,
) -> dict[str, SegmentRow]:
    """The transport's end-state invariants; returns the catalog rows checked.

    - every segment marked uploaded in the buffer has a catalog row with its SHA-256 and size,
      and its object holds exactly the buffer file's bytes;
    - every catalog row's object exists with the row's size and hash; every object has a row;
      no segment id appears twice in storage;
    - with `expect_all_uploaded`, nothing is left unsent.
    """
    infos = buffer.segments()
    rows = catalog_rows(catalog, cameras)
    keys = list(store.list_keys(""))
    ids = Counter(Path(k).stem for k in keys)
    duplicated = {sid: n for sid, n in ids.items() if n > 1}
    assert not duplicated, f"segments stored more than once: {duplicated}"
    row_keys = {row.object_key for row in rows.values()}
    assert set(keys) == row_keys, (
        f"storage and catalog disagree: objects without row {sorted(set(keys) - row_keys)}, "
        f"rows without object {sorted(row_keys - set(keys))}"
    )
    for row in rows.values():
        data = store.read_bytes(row.object_key)
        assert len(data) == row.size_bytes, f"{row.segment_id}: object size != catalog size"
        assert hashlib.sha256(data).hexdigest() == row.sha256, f"{row.segment_id}: hash differs"
    for info in infos:
        if info.state is not SegmentState.UPLOADED:
            assert not expect_all_uploaded, f"{info.segment_id} still unsent"
            continue
        mine = rows.get(info.segment_id)
        assert mine is not None, f"{info.segment_id} marked uploaded but not in the catalog"
        assert (mine.sha256, mine.size_bytes) == (info.sha256, info.size_bytes)
        local = buffer.path_of(info).read_bytes()
        assert store.read_bytes(mine.object_key) == local, f"{info.segment_id}: bytes differ"
    return rows


def chain_problems(rows: dict[str, SegmentRow], camera: str) -> list[str]:
    """End-to-end chain check on the controller's side: each link names its predecessor."""
    mine = sorted((r for r in rows.values() if r.camera_id == camera), key=lambda r: r.start_us)
    problems = []
    for before, after in zip(mine, mine[1:], strict=False):
        if after.prev_sha256 != before.sha256:
            problems.append(
                f"{after.segment_id}: prev {after.prev_sha256[:12]} != {before.sha256[:12]}"
            )
    problems += [f"{r.segment_id}: flagged {r.flag!r}" for r in mine if not r.chain_ok]
    return problems


def random_seed() -> int:
    """A seed printed by the tests so a failing fault sequence can be replayed."""
    return int(os.environ.get("VIGIL_TEST_SEED", random.randrange(1 << 30)))


def uploaded_but_not_stored(
    buffer: SegmentBuffer, catalog: Catalog, store: ObjectStore
) -> list[str]:
    """Segments the agent marked uploaded without the controller holding them (must be [])."""
    missing = []
    for info in buffer.segments(state=SegmentState.UPLOADED):
        row = catalog.get_segment(info.segment_id)
        if row is None or row.sha256 != info.sha256:
            missing.append(f"{info.segment_id}: no catalog row with its hash")
        elif store.size(row.object_key) != info.size_bytes:
            missing.append(f"{info.segment_id}: object {row.object_key} missing or wrong size")
    return missing
