"""Leases over real, shaped links: agents in network namespaces behind `tc tbf` uplinks.

Two village agents (`python -m edge_agent.leases` on pre-filled buffers), each in its own
namespace, reach the controller (its own namespace, scheduler wired in) over a veth pair
whose egress is capped by tbf: 4.4 and 2.2 Mbit/s physical, planned as 3.6 and 1.8 Mbit/s
village links in the topology file. Checked, in one run of about a minute:

1. rates: what each link delivers (commit times in the catalog) matches the plan within
   10%, and the controller's own per-link measurement agrees;
2. evidence overtakes backfill within one lease period: a footage request for recent
   footage is being uploaded within `HORIZON_S` of the request, and no backfill is
   committed until all of it is in;
3. a link cut (link down longer than a lease lives, so the lease is reclaimed) and heal:
   the request made during the cut is drained first once the link is back, and in the end
   every segment of both buffers is in storage with its hash: nothing lost.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.catalog import Catalog, make_engine
from controller.clock import SystemClock as ControllerClock
from controller.jobs import JobRequest, JobService
from controller.pki import init_pki
from edge_agent.clock import SystemClock
from edge_agent.store import SegmentBuffer
from tests.integration.controller_proc import DeviceCreds, database_url, issue_device, register
from tests.integration.test_uplink_support import (
    local_store,
    open_catalog,
    verify_delivery,
    write_segments,
)
from tests.rig.netns import CONTROLLER_IP, NetRig
from tests.support import ManagedProcess, wait_until

pytestmark = pytest.mark.rig

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000
HORIZON_S = 3.0
PORT = 7443
TOPOLOGY = """
[[links]]
id = "city"
capacity_bps = 1_000_000_000

[[links]]
id = "village-a"
parent = "city"
capacity_bps = 3_600_000

[[links]]
id = "village-b"
parent = "city"
capacity_bps = 1_800_000

[[devices]]
id = "nvr-a"
link = "village-a"

[[devices]]
id = "nvr-b"
link = "village-b"
"""
# camera -> (segments, bytes each); backfill is old, the "evid" cameras hold what is requested.
FOOTAGE = {
    "nvr-a": {"a-back": (90, 150_000), "a-evid": (10, 150_000)},
    "nvr-b": {"b-back": (50, 80_000), "b-evid": (8, 80_000)},
}
TBF = {"nvr-a": 4_400_000, "nvr-b": 2_200_000}


class Catalogue:
    """Reads commits from the controller's catalog (SQLite, WAL) while it runs."""

    def __init__(self, data_dir: Path) -> None:
        self.engine = make_engine(database_url(data_dir))
        self.catalog = Catalog(self.engine, ControllerClock())

    def commits(self, camera: str) -> list[tuple[int, int, str]]:
        """(committed_at_us, size, segment id), in commit order."""
        rows = self.catalog.segments_in_range(camera, 0, 2**62)
        return sorted((r.committed_at_us, r.size_bytes, r.segment_id) for r in rows)

    def count(self, camera: str) -> int:
        return self.catalog.count_segments(camera)


def rate_bps(commits: list[tuple[int, int, str]]) -> float:
    """Delivered bit/s between the first and the last of these commits."""
    span = (commits[-1][0] - commits[0][0]) / S
    return sum(size for _, size, _ in commits[1:]) * 8 / span


def snapshot(path: Path) -> dict:  # type: ignore[type-arg]
    import json

    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_leases_over_shaped_links(netrig: NetRig, tmp_path: Path) -> None:
    data = tmp_path / "controller"
    init_pki(data, [CONTROLLER_IP], datetime.now(UTC))
    creds: dict[str, DeviceCreds] = {}
    buffers: dict[str, Path] = {}
    ranges: dict[str, tuple[int, int]] = {}
    now = SystemClock().now_us()
    for device, cameras in FOOTAGE.items():
        register(data, device, list(cameras), site=device)
        creds[device] = issue_device(data, device, tmp_path / f"{device}-certs")
        buffers[device] = tmp_path / f"{device}-buffer"
        with SegmentBuffer.open(buffers[device], 1 << 30, SystemClock()) as buf:
            for i, (camera, (count, size)) in enumerate(cameras.items()):
                infos = write_segments(
                    buf, camera, count, size, start_us=now - (7200 - 3600 * i) * S
                )
                ranges[camera] = (infos[0].start_us, infos[-1].end_us)
    topology = tmp_path / "topology.toml"
    topology.write_text(TOPOLOGY)
    snap = tmp_path / "snapshot.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    procs: list[ManagedProcess] = []
    catalogue = Catalogue(data)
    try:
        controller = ManagedProcess(
            netrig.argv(netrig.controller_ns, [
                sys.executable, "-m", "tests.rig.test_links_support", "--data-dir", str(data),
                "--listen", f"{CONTROLLER_IP}:{PORT}", "--topology", str(topology),
                "--snapshot", str(snap), "--horizon-s", str(HORIZON_S),
            ]),
            tmp_path / "controller.log", env=env, cwd=ROOT,
        )  # fmt: skip
        procs.append(controller)
        for device in FOOTAGE:
            link = netrig.add_agent(device, TBF[device])
            dev = creds[device]
            argv = [
                sys.executable, "-m", "edge_agent.leases", "--buffer", str(buffers[device]),
                "--quota-bytes", str(1 << 30), "--device-id", device,
                "--controller", f"{CONTROLLER_IP}:{PORT}", "--ca-cert", str(dev.ca_path),
                "--client-cert", str(dev.cert_path), "--client-key", str(dev.key_path),
                "--chunk-bytes", "32768", "--inventory-interval-s", "2",
                "--backoff-initial-s", "0.2", "--backoff-cap-s", "1", "--settle-s", "30",
            ]  # fmt: skip
            for camera in FOOTAGE[device]:
                argv += ["--camera", camera]
            procs.append(
                ManagedProcess(
                    netrig.argv(link.namespace, argv), tmp_path / f"{device}.log", env=env, cwd=ROOT
                )  # fmt: skip
            )
        wait_until(snap.exists, 30, f"the controller to start:\n{controller.log_text()}")
        _run_phases(netrig, catalogue, snap, data, procs, ranges)
    finally:
        for proc in reversed(procs):
            proc.stop()
        catalogue.engine.dispose()
    _nothing_lost(data, buffers)


def _run_phases(
    rig: NetRig,
    cat: Catalogue,
    snap: Path,
    data: Path,
    procs: list[ManagedProcess],
    ranges: dict[str, tuple[int, int]],
) -> None:
    logs = lambda: "\n".join(p.log_text()[-1500:] for p in procs)  # noqa: E731
    # 1. Steady backfill: delivered rate per link against the plan.
    wait_until(lambda: cat.count("a-back") >= 3 and cat.count("b-back") >= 3, 30,
               f"both agents uploading\n{logs()}")  # fmt: skip
    start = {cam: cat.count(cam) for cam in ("a-back", "b-back")}
    wait_until(lambda: cat.count("a-back") >= start["a-back"] + 18
               and cat.count("b-back") >= start["b-back"] + 12, 40, "rate samples")  # fmt: skip
    # Between two leases (the last one finished, the next replan, <= coalesce_s, not yet run)
    # the desk has released the device's share and the snapshot shows it planned at 0: 0.1-0.15 s
    # of each ~3 s lease here (measured: planned 0 exactly when no lease is held). Read the plan
    # at an instant when both devices hold a lease.
    held: dict = {}  # type: ignore[type-arg]
    wait_until(lambda: _both_leased(snap, held), 10, f"both devices holding a lease\n{logs()}")
    plan = {d["device_id"]: d for d in held["devices"]}
    links = {link["link_id"]: link for link in held["links"]}
    for device, camera, link_id in (("nvr-a", "a-back", "village-a"),
                                    ("nvr-b", "b-back", "village-b")):  # fmt: skip
        planned = plan[device]["planned_bps"]
        delivered = rate_bps(cat.commits(camera)[start[camera] - 1 :])
        measured = links[link_id]["delivered_bps"]
        print(f"{device}: planned {planned} delivered {delivered:.0f} controller {measured}")
        assert planned == links[link_id]["capacity_bps"], "a big backlog fills its link"
        assert abs(delivered / planned - 1) <= 0.10, f"{device}: {delivered:.0f} vs {planned}"
        assert abs(measured / planned - 1) <= 0.20, f"{device}: controller measured {measured}"
    print(rig.qdisc_stats("nvr-a"))

    # 2. A footage request on nvr-a overtakes its backfill within one lease period.
    engine = make_engine(database_url(data))
    jobs = JobService(Catalog(engine, ControllerClock()), ControllerClock())
    try:
        asked = time.time() * S
        jobs.request(JobRequest(("a-evid",), *ranges["a-evid"], int(asked + 600 * S), "case-a"))
        wait_until(lambda: cat.count("a-evid") == 10, 30, f"the evidence\n{logs()}")
        ev = cat.commits("a-evid")
        print(f"evidence started {(ev[0][0] - asked) / S:.2f} s after the request")
        assert ev[0][0] - asked <= HORIZON_S * S
        back = [t for t, _, _ in cat.commits("a-back")]
        assert not [t for t in back if ev[0][0] < t < ev[-1][0]], "backfill amid evidence"
        assert cat.count("a-back") < FOOTAGE["nvr-a"]["a-back"][0], "evidence came last"

        # 3. Cut nvr-b's link longer than a lease lives; request footage meanwhile; heal.
        reclaimed = snapshot(snap)["counters"]["leases_reclaimed"]
        rig.cut("nvr-b")
        deadline = int(time.time() * S + 600 * S)
        jobs.request(JobRequest(("b-evid",), *ranges["b-evid"], deadline, "case-b"))
        wait_until(lambda: snapshot(snap)["counters"]["leases_reclaimed"] > reclaimed, 30,
                   "nvr-b's unused lease to be reclaimed")  # fmt: skip
        rig.heal("nvr-b")
        healed = time.time() * S
    finally:
        engine.dispose()
    total = {cam: n for cams in FOOTAGE.values() for cam, (n, _) in cams.items()}
    wait_until(lambda: all(cat.count(c) == n for c, n in total.items()), 90,
               f"everything to drain\n{logs()}")  # fmt: skip
    ev = cat.commits("b-evid")
    back = [t for t, _, _ in cat.commits("b-back")]
    print(f"nvr-b evidence started {(ev[0][0] - healed) / S:.2f} s after the heal")
    assert len([t for t in back if healed < t < ev[0][0]]) <= 2, "backfill drained first"
    assert not [t for t in back if ev[0][0] < t < ev[-1][0]], "backfill amid evidence"
    assert [t for t in back if t > ev[-1][0]], "backfill was still waiting"


def _both_leased(snap: Path, into: dict) -> bool:  # type: ignore[type-arg]
    """Whether the snapshot now shows every device holding a lease (then kept in `into`)."""
    data = snapshot(snap)
    leased = {d["device_id"] for d in data["devices"] if d["lease_id"]}
    if leased >= set(FOOTAGE):
        into.update(data)
        return True
    return False


def _nothing_lost(data: Path, buffers: dict[str, Path]) -> None:
    """Every buffered segment is stored once, byte-identical, and marked uploaded."""
    cameras = tuple(c for cams in FOOTAGE.values() for c in cams)
    catalog, engine = open_catalog(data)
    try:
        for path in buffers.values():
            with SegmentBuffer.open(path, 1 << 30, SystemClock()) as buf:
                rows = verify_delivery(buf, catalog, local_store(data), cameras)
        assert len(rows) == sum(n for cams in FOOTAGE.values() for n, _ in cams.values())
    finally:
        engine.dispose()
