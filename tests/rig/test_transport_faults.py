"""kill -9 of the agent's uploader and of the controller, mid-upload, at random points.

A bounded loop of >= 20 faults against real processes: `python -m edge_agent.uplink` (the
uplink alone, draining a real SegmentBuffer) and `vigil-controller serve` (real gRPC with
mutual TLS, SQLite catalog, local object store, its managed Mosquitto). After every agent
kill the buffer is checked:
nothing marked uploaded that the controller does not hold. At the end, once the agent has
drained the buffer: every buffered segment is in storage exactly once with its SHA-256, the
catalog agrees with storage, and each camera's chain verifies end to end.

Replay a failing run with VIGIL_TEST_SEED=<the printed seed>.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import pytest

from edge_agent.clock import SystemClock
from edge_agent.store import SegmentBuffer
from tests.integration.controller_proc import ControllerProcess, free_low_port
from tests.integration.test_uplink_support import (
    QUOTA,
    Site,
    chain_problems,
    local_store,
    make_site,
    open_catalog,
    random_seed,
    uploaded_but_not_stored,
    verify_delivery,
    write_segments,
)
from tests.support import ManagedProcess, wait_until

FAULTS = 24
RATE_BPS = 4_000_000  # 500 kB/s: a 250 kB segment is ~0.5 s on the wire
CHUNK = 32 * 1024


def agent_argv(site: Site, buffer_dir: Path, port: int, *extra: str) -> list[str]:
    dev = site.device
    return [
        sys.executable,
        "-m",
        "edge_agent.uplink",
        "--buffer",
        str(buffer_dir),
        "--quota-bytes",
        str(QUOTA),
        "--controller",
        f"127.0.0.1:{port}",
        "--ca-cert",
        str(dev.ca_path),
        "--client-cert",
        str(dev.cert_path),
        "--client-key",
        str(dev.key_path),
        "--rate-bps",
        str(RATE_BPS),
        "--chunk-bytes",
        str(CHUNK),
        "--backoff-initial-s",
        "0.1",
        "--backoff-cap-s",
        "0.5",
        *extra,
    ]


def staged_bytes(data_dir: Path) -> int:
    """Bytes of uncommitted segments staged on the controller (> 0: an upload is partway)."""
    total = 0
    for part in (data_dir / "staging").rglob("*.part"):
        try:
            total += part.stat().st_size
        except FileNotFoundError:  # committed meanwhile
            pass
    return total


@pytest.mark.rig
def test_kill9_agent_and_controller_mid_upload(tmp_path: Path) -> None:
    seed = random_seed()
    print(f"VIGIL_TEST_SEED={seed}")
    rng = random.Random(seed)
    site = make_site(tmp_path)
    buffer_dir = tmp_path / "agent-buffer"
    clock = SystemClock()
    with SegmentBuffer.open(buffer_dir, QUOTA, clock) as buffer:
        for camera in site.cameras:
            write_segments(buffer, camera, 6, size=250_000, rng=rng)
    # With its managed Mosquitto, as deployed: each kill -9 must not leave the broker behind
    # (a restarted controller would find its port taken), issue 19.
    mqtt = {"mode": "managed", "port": free_low_port()}
    ctl = ControllerProcess(site.data_dir, tmp_path, mqtt=mqtt).start()
    catalog, engine = open_catalog(site.data_dir)
    store = local_store(site.data_dir)
    agent_log = tmp_path / "agent.log"
    agent = ManagedProcess(agent_argv(site, buffer_dir, ctl.port), agent_log)
    kills = {"agent": 0, "controller": 0}
    mid_upload = 0
    try:
        victims = ["agent", "controller"] * (FAULTS // 2)
        rng.shuffle(victims)
        for victim in victims:
            # Kill only once uploads make progress again after the last fault (this also
            # proves both sides recover), then at a random point of whatever is in flight.
            before = (staged_bytes(site.data_dir), catalog.count_segments())
            wait_until(
                lambda: (staged_bytes(site.data_dir), catalog.count_segments()) != before,  # noqa: B023
                30,
                f"uploads to make progress before killing the {victim}",
            )
            time.sleep(rng.uniform(0.0, 0.6))
            mid_upload += staged_bytes(site.data_dir) > 0
            if victim == "agent":
                agent.kill9()
                agent.stop()
                with SegmentBuffer.open(buffer_dir, QUOTA, clock) as buffer:
                    assert uploaded_but_not_stored(buffer, catalog, store) == []
                    if buffer.stats().unsent_segments < 8:  # keep work flowing
                        for camera in site.cameras:
                            write_segments(buffer, camera, 3, size=250_000, rng=rng)
                agent = ManagedProcess(agent_argv(site, buffer_dir, ctl.port), agent_log)
            else:
                ctl.kill9()
                ctl.start()
            kills[victim] += 1
        agent.stop()  # SIGTERM: a clean stop of whatever is in flight
        drain = ManagedProcess(
            agent_argv(site, buffer_dir, ctl.port, "--exit-when-idle"), tmp_path / "drain.log"
        )
        drain.proc.wait(timeout=180)
        drain.stop()
        summary = json.loads(drain.log_text().strip().splitlines()[-1])
        with SegmentBuffer.open(buffer_dir, QUOTA, clock) as buffer:
            rows = verify_delivery(buffer, catalog, store, site.cameras)
            total = len(buffer.segments())
            problems = {c: buffer.verify_chain(c) for c in site.cameras}
    finally:
        agent.stop()
        ctl.stop()
        engine.dispose()
    print(f"faults={kills} mid_upload={mid_upload} segments={total} summary={summary}")
    assert sum(kills.values()) >= 20 and min(kills.values()) >= 10
    assert mid_upload >= FAULTS // 2, "most kills should hit a partial upload"
    assert summary["conflicts"] == [] and summary["refused"] == []
    assert len(rows) == total >= 12
    assert problems == {c: [] for c in site.cameras}
    assert {c: chain_problems(rows, c) for c in site.cameras} == {c: [] for c in site.cameras}
