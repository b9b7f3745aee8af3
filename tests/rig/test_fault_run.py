"""A seeded fault run against the real processes, checked from outside (issue 19).

camsim (3 emulated cameras, 2 s segments) -> `python -m edge_agent run` (full agent: capture,
a small buffer so outages force evictions, leased uplink) -> `vigil-controller serve` (its
managed Mosquitto, scheduler, SeaweedFS S3 store). Faults, drawn from the printed seed: kill
-9 of the agent, of the controller and of SeaweedFS, camera stops, and cuts of the device's
link (the agent runs in its own network namespace, joined to the root one by a veth pair that
is set down: tests/rig/netns.py); each followed by a random down time and restart, and a
random pause.

Afterwards everything is brought back, the cameras stop, the backlog drains, and the
accounting (tests/rig/fault_accounting.py) is computed from the agent's index, the catalog
and the store: recorded = uploaded + buffered + evicted-with-record, nothing lost or
duplicated, catalog and store agree, chain breaks only where recorded segments are missing.
Avoidable losses (evicted unsent while the city held their verified bytes) are asserted 0:
the controller's commit queue answers ACCEPTED for those (controller/ingest/commit_queue.py).
Objects in the store that no catalog row names (a controller killed between the object's write
and its row, then the segment evicted at the edge: stray bytes, not a loss) are removed by the
sweep of unreferenced objects (`vigil-controller storage-sweep --apply`, after a dry run), run
as an operator would once the drain is over; the accounting then asserts none is left and
that the sweep took no object a catalog row names.

Waits are drawn short (down times, pauses) so the bounded run costs about three minutes; a
recovery slower than SLOW_RECOVERY_S prints both processes' log lines of that interval, so a
slow one can be explained from the run's own output.

`make chaos` runs it with VIGIL_FAULT_RUN_FAULTS=100. Replay: VIGIL_TEST_SEED=<seed>.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from controller.catalog import Catalog
from controller.grants.keys import ensure_keys
from controller.pki import init_pki
from controller.storage import open_store
from edge_agent.clock import SystemClock
from edge_agent.model import SegmentState
from edge_agent.store import SegmentBuffer
from tests.fixtures.seaweedfs import SeaweedFS
from tests.integration.controller_proc import ControllerProcess, free_low_port
from tests.integration.test_uplink_support import make_site, open_catalog, random_seed
from tests.rig.fault_accounting import CityRow, Facts, Recorded, account
from tests.rig.netns import AgentLink, NetRig
from tests.support import ManagedProcess, wait_until
from vigil_camsim.launcher import CamsimProcess

ROOT = Path(__file__).resolve().parents[2]
CAMERAS = ("cam1", "cam2", "cam3")
QUOTA = 2 * 1024 * 1024  # ~18 s of three 300 kbit/s cameras: long outages force evictions
FAULTS = int(os.environ.get("VIGIL_FAULT_RUN_FAULTS", "30"))
SLOW_RECOVERY_S = 5.0
SWEEP_GRACE_S = 2.0  # the drain's quiet period is longer: nothing is in flight by then
KINDS = ("agent", "controller", "store", "camera", "link")
WEIGHTS = (3, 3, 3, 2, 2)
DEVICE = "nvr-fault"


class Rig:
    """The processes of one run. The agent runs in its own network namespace (net.py), joined
    to the root one by `link`: the controller, SeaweedFS and camsim listen there, at
    `link.host_ip` for the agent (so a link cut takes the agent's cameras away as well)."""

    def __init__(
        self, tmp: Path, cams: CamsimProcess, weed: SeaweedFS, net: NetRig, link: AgentLink
    ) -> None:
        self.tmp, self.cams, self.weed, self.net, self.link = tmp, cams, weed, net, link
        self.site = make_site(tmp, CAMERAS, DEVICE)
        # The server certificate must name the address the agent dials.
        init_pki(self.site.data_dir, ["127.0.0.1", link.host_ip], datetime.now(UTC))
        ensure_keys(self.site.data_dir)  # an applied storage-sweep is audited (signed)
        bucket = weed.new_bucket_name()
        self.storage_url = (
            f"s3://{bucket}?endpoint={weed.endpoint_url}"
            f"&access_key={weed.access_key}&secret_key={weed.secret_key}"
        )
        port = free_low_port()
        self.ctl = ControllerProcess(
            self.site.data_dir,
            tmp,
            port=port,
            grpc={"listen": f"0.0.0.0:{port}"},
            storage_url=self.storage_url,
            mqtt={"mode": "managed", "port": free_low_port()},
        )
        self.agent_data = tmp / "agent"
        dev = self.site.device
        cameras = "".join(
            f'[[cameras]]\nid = "{cid}"\nurl = "{cams.url(n)}"\nsegment_seconds = 2\n'
            for n, cid in enumerate(CAMERAS, start=1)
        )
        self.config = tmp / "agent.toml"
        self.config.write_text(
            f'device_id = "{dev.device_id}"\ndata_dir = "{self.agent_data}"\n{cameras}'
            f"[buffer]\nquota_bytes = {QUOTA}\n"
            f'[uplink]\ncontroller = "{link.host_ip}:{self.ctl.port}"\n'
            f'ca_cert = "{dev.ca_path}"\nclient_cert = "{dev.cert_path}"\n'
            f'client_key = "{dev.key_path}"\n'
        )
        self.agent: ManagedProcess | None = None
        self.catalog: Catalog | None = None
        self.engine: Engine | None = None

    def start_agent(self) -> None:
        argv = [sys.executable, "-m", "edge_agent", "run", "--config", str(self.config)]
        self.agent = ManagedProcess(
            self.net.argv(self.link.namespace, argv), self.tmp / "agent.log", cwd=ROOT
        )

    def count(self) -> int:
        assert self.catalog is not None
        return self.catalog.count_segments()

    def next_commit_s(self, since: float, timeout: float = 90.0) -> float:
        """Seconds from `since` until the catalog grows (the recovery time)."""
        before = self.count()
        wait_until(lambda: self.count() > before, timeout, "uploads to resume", 0.05)
        return time.monotonic() - since


# Down times (s) drawn per kind; the store's and the controller's long enough that uploads
# stop and the 2 MiB buffer evicts now and then, short enough that 30 faults take ~3 min.
DOWN_S = {"agent": (0.3, 2.0), "controller": (0.5, 4.0), "store": (0.5, 5.0), "camera": (1.0, 5.0)}
DOWN_S["link"] = (0.5, 5.0)
PAUSE_S = (0.2, 1.0)


@dataclass
class Slow:
    kind: str
    ready_wall: float
    took_s: float


def inject(
    rig: Rig, kind: str, rng: random.Random, recovery: dict[str, list[float]], slow: list[Slow]
) -> None:
    """One fault: break, wait a random down time, restore, measure the recovery."""
    down = rng.uniform(*DOWN_S[kind])
    if kind == "agent":
        assert rig.agent is not None
        rig.agent.kill9()
        rig.agent.stop()
        time.sleep(down)
        rig.start_agent()
    elif kind == "controller":
        rig.ctl.kill9()
        time.sleep(down)
        rig.ctl.start(timeout=60)
    elif kind == "store":
        rig.weed.kill9()
        time.sleep(down)
        rig.weed.start()
    elif kind == "link":  # the device's only link goes down (no RST: packets just stop)
        rig.net.cut(DEVICE)
        time.sleep(down)
        rig.net.heal(DEVICE)
    else:
        cam = rng.choice(rig.cams.camera_ids)
        rig.cams.client.stop(cam)
        time.sleep(down)
        rig.cams.client.start(cam)
        return
    ready, ready_wall = time.monotonic(), time.time()
    took = rig.next_commit_s(ready)
    recovery[kind].append(took)
    if took > SLOW_RECOVERY_S:
        slow.append(Slow(kind, ready_wall, took))


def log_lines_between(path: Path, start: float, end: float) -> list[str]:
    """The lines of a process log stamped (`%Y-%m-%d %H:%M:%S,mmm`, local time) in [start, end]."""
    out = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            continue
        if start - 0.5 <= at <= end:
            out.append(line[:240])
    return out


def sweep(rig: Rig, apply: bool) -> str:
    """`vigil-controller storage-sweep` on the run's controller config (a dry run unless
    `apply`), as an operator runs it; its report."""
    argv = [sys.executable, "-m", "controller", "storage-sweep", "--config",
            str(rig.ctl.config_path), "--grace-s", str(SWEEP_GRACE_S)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    done = subprocess.run(
        [*argv, *(["--apply"] if apply else [])],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"storage-sweep failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def gather(rig: Rig) -> Facts:
    assert rig.catalog is not None
    recorded: list[Recorded] = []
    with SegmentBuffer.open(rig.agent_data / "buffer", 10**12, SystemClock()) as buffer:
        for s in buffer.segments():
            state = "uploaded" if s.state is SegmentState.UPLOADED else "unsent"
            recorded.append(
                Recorded(s.segment_id, s.camera_id, s.start_us, s.size_bytes, s.sha256, state)
            )
        for e in buffer.evictions(only_unreported=False):
            state = "evicted_uploaded" if e.was_uploaded else "evicted_unsent"
            recorded.append(
                Recorded(e.segment_id, e.camera_id, e.start_us, e.size_bytes, "", state)
            )
    store = open_store(rig.storage_url)
    rows = []
    for cam in CAMERAS:
        for r in rig.catalog.segments_in_range(cam, 0, 2**62):
            try:
                stored: str | None = hashlib.sha256(store.read_bytes(r.object_key)).hexdigest()
            except Exception:
                stored = None
            rows.append(
                CityRow(
                    r.segment_id, r.camera_id, r.start_us, r.sha256, r.prev_sha256, r.object_key,
                    stored,
                )
            )  # fmt: skip
    sizes = {r.segment_id: r.size_bytes for r in recorded}
    staged: set[str] = set()
    for part in (rig.site.data_dir / "staging").rglob("*.part"):
        sid = part.name.removesuffix(".part")
        if sid in sizes and part.stat().st_size >= sizes[sid]:
            staged.add(sid)
    return Facts(recorded, rows, list(store.list_keys("")), staged)


@pytest.mark.rig
@pytest.mark.timeout(300 + 30 * FAULTS)  # ~10 s a fault on a loaded machine, plus the drain
def test_fault_run_loses_nothing_it_does_not_record(
    tmp_path: Path, camsim: Callable[..., CamsimProcess], seaweedfs: SeaweedFS, netrig: NetRig
) -> None:
    seed = random_seed()
    print(f"\nVIGIL_TEST_SEED={seed} faults={FAULTS}")
    rng = random.Random(seed)
    link = netrig.add_host_agent(DEVICE)
    cams = camsim(cameras=len(CAMERAS), address=link.host_ip)
    rig = Rig(tmp_path, cams, seaweedfs, netrig, link)
    rig.ctl.start(timeout=60)
    rig.catalog, rig.engine = open_catalog(rig.site.data_dir)
    rig.start_agent()
    recovery: dict[str, list[float]] = {k: [] for k in KINDS if k != "camera"}
    slow: list[Slow] = []
    done: dict[str, int] = dict.fromkeys(KINDS, 0)
    started = time.monotonic()
    try:
        wait_until(lambda: rig.count() >= 3, 90, "the first uploads")
        for _ in range(FAULTS):
            kind = rng.choices(KINDS, WEIGHTS)[0]
            inject(rig, kind, rng, recovery, slow)
            done[kind] += 1
            time.sleep(rng.uniform(*PAUSE_S))
        # Everything back; the cameras stop; the backlog drains (or stays buffered).
        for cam in cams.camera_ids:
            cams.client.stop(cam)
        last = -1
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and rig.count() != last:
            last = rig.count()
            time.sleep(5.0)  # quiet for this long: the agent has nothing left it can send
        assert rig.agent is not None
        rig.agent.stop(timeout=30)
        time.sleep(SWEEP_GRACE_S)
        print(sweep(rig, apply=False))
        swept = sweep(rig, apply=True)
        print(swept)
        facts = gather(rig)
    finally:
        if rig.agent is not None:
            rig.agent.stop()
        rig.ctl.stop()
        rig.weed.start()
        if rig.engine is not None:
            rig.engine.dispose()
    acc = account(facts)
    took = time.monotonic() - started
    print(f"fault run: seed {seed}, {sum(done.values())} faults {done} in {took:.0f} s")
    print(acc.table())
    for kind, times in recovery.items():
        if times:
            print(
                f"  recovery after {kind} restart (s): median {statistics.median(times):.2f} "
                f"max {max(times):.2f} n={len(times)}"
            )
    if acc.avoidable:
        print(f"  avoidable losses (staged complete, then evicted): {acc.avoidable[:10]}")
    if acc.orphan_objects:
        print(f"  objects without a catalog row: {acc.orphan_objects[:10]}")
    for sl in slow:  # explained from the logs, not guessed at
        end = sl.ready_wall + sl.took_s
        print(f"  slow recovery after a {sl.kind} restart: {sl.took_s:.2f} s; the logs meanwhile:")
        for who, path in (("controller", rig.ctl.log_path), ("agent", rig.tmp / "agent.log")):
            for line in log_lines_between(path, sl.ready_wall, end)[-40:]:
                print(f"    {who}: {line}")
    assert sum(done.values()) >= min(FAULTS, 30)
    assert acc.recorded > 0 and acc.uploaded > 0
    assert acc.lost == [], acc.lost
    assert acc.duplicated == [], acc.duplicated
    assert acc.disagree == [], acc.disagree
    assert acc.unexplained_breaks == [], acc.unexplained_breaks
    assert acc.recorded == acc.uploaded + acc.buffered + acc.evicted_with_record
    assert acc.avoidable == [], acc.avoidable
    assert acc.orphan_objects == [], f"left by the sweep: {acc.orphan_objects}\n{swept}"
