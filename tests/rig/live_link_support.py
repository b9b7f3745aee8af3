"""The live link rig's controller process (no tests in here).

    python -m tests.rig.live_link_support --data-dir D --listen 192.0.2.1:P --http-port H \\
        --topology T.toml --work W

A real controller (mutual-TLS gRPC, HTTP with the live WebSocket, SQLite, the scheduler on
the topology file, `[live] max_streams_per_link = 1`) inside the rig's controller namespace,
where the test cannot connect from outside: so this process also drives the viewers. The
test writes command files into W; this process answers in W:

- every 0.25 s `snapshot.json`: the scheduler's snapshot (plan rates, leases, link delivery),
  plus the hub's feeds (`live_feeds`: cameras with a feed, lingering ones included) and
  their last measured rates (`live_rates`, bit/s);
- `watch-<camera>` (a file appears): a WebSocket viewer of that camera opens (login, live
  grant, hello) and writes `<camera>.json` every 0.5 s: statuses seen, media bytes, and the
  arrival latency of every frame whose camsim wall-clock stamp (SEI) it found;
- `unwatch-<camera>`: that viewer closes;
- `reload-topology`: the scheduler re-reads the topology file (then the file goes away).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from bench.live import live_login
from controller.assembly import Parts, build_controller
from controller.clock import SystemClock
from controller.config import ControllerConfig
from controller.grants.keys import ensure_keys
from controller.grants.policy import default_policy
from controller.scheduler.service import SchedulerOptions
from controller.users import create_user
from vigil_camsim.core import read_wallclock
from vigil_common.signals import stop_on_signals

PASSWORD = "rig live password"


def _write(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _viewer(base: str, camera: str, work: Path, stop: threading.Event) -> None:
    token, hello = live_login(base, "op", PASSWORD, camera)
    out: dict[str, Any] = {"states": [], "bytes": 0, "latencies_ms": []}
    tail = b""
    url = base.replace("http://", "ws://") + f"/api/v1/live/{camera}/ws"
    with connect(url, max_size=None) as ws:
        ws.send(hello)
        written = time.monotonic()
        while not stop.is_set():
            try:
                msg = ws.recv(timeout=0.5)
            except TimeoutError:
                msg = None
            if isinstance(msg, bytes):
                at_ms = time.time() * 1000
                out["bytes"] += len(msg)
                data = tail + msg
                stamps = read_wallclock(data)
                out["latencies_ms"] += [at_ms - us / 1000 for us in stamps[-1:] if stamps]
                tail = msg[-64:] if not stamps else b""
            elif isinstance(msg, str):
                status = json.loads(msg)
                out["states"].append([status.get("state", status.get("error")), status])
                out["states"] = out["states"][-20:]
            if time.monotonic() - written >= 0.5:
                _write(work / f"{camera}.json", out)
                written = time.monotonic()
    _write(work / f"{camera}.json", out)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", required=True)
    p.add_argument("--listen", required=True)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--topology", required=True)
    p.add_argument("--work", type=Path, required=True)
    args = p.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = SchedulerOptions(
        topology_path=args.topology,
        horizon_s=3.0,
        lease_grace_s=1.0,
        tick_s=0.1,
        replan_interval_s=1.5,
        progress_interval_s=0.25,
        delivery_window_s=5.0,
    )
    config = ControllerConfig.model_validate(
        {
            "data_dir": args.data_dir,
            "grpc": {"listen": args.listen},
            "http": {"listen": f"127.0.0.1:{args.http_port}"},
            "live": {"linger_s": 1.0, "max_streams_per_link": 1, "assumed_kbps": 300},
        }
    )
    ensure_keys(Path(args.data_dir))
    clock = SystemClock()
    controller = build_controller(config, clock, Parts(http=True, scheduler=options))
    assert controller.scheduler is not None and controller.live is not None
    scheduler, hub = controller.scheduler, controller.live
    stop = stop_on_signals()
    controller.start()
    create_user(
        controller.engine, clock, "op", "wudu", "operator", PASSWORD, policy=default_policy()
    )
    base = f"http://127.0.0.1:{args.http_port}"
    viewers: dict[str, threading.Event] = {}
    try:
        while not stop.wait(0.25):
            snap = dataclasses.asdict(scheduler.snapshot())
            # The hub's feeds (a feed lingers after its last viewer) and measured rates.
            snap["live_feeds"] = hub.feeds()
            snap["live_rates"] = dict(hub._rates)  # a test's view of a private
            _write(args.work / "snapshot.json", snap)
            for cmd in sorted(args.work.glob("watch-*")):
                camera = cmd.name.removeprefix("watch-")
                cmd.unlink()
                viewers[camera] = done = threading.Event()
                threading.Thread(
                    target=_viewer, args=(base, camera, args.work, done), daemon=True
                ).start()
            for cmd in sorted(args.work.glob("unwatch-*")):
                camera = cmd.name.removeprefix("unwatch-")
                cmd.unlink()
                if camera in viewers:
                    viewers.pop(camera).set()
            if (args.work / "reload-topology").exists():
                (args.work / "reload-topology").unlink()
                scheduler.reload_topology()
    finally:
        for done in viewers.values():
            done.set()
        controller.stop(grace_s=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
