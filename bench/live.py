"""Benchmark: live view, camera to browser, and what the controller costs per viewer.

One run, every part real: an emulated camera (camsim, 640x360 25 fps 1 Mbit/s, each frame
stamped with its send time as SEI) -> the agent's capture and live tee (its own process) ->
the Feed stream over mutual-TLS gRPC -> the controller (its own process: hub, WebSocket
route with grants and audit) -> N WebSocket viewers, plus one headless Chromium viewer
playing through the console's live player (mpegts.js) that measures glass-to-glass latency
per frame (bench/live_probe.py: the SEI stamp against requestVideoFrameCallback's display
time) and the start-up time (attach, grant included, to the first presented frame).

The baseline, in the same run and window: a bare relay (its own process, ~30 lines of
`websockets`) that takes the same bytes as one more viewer of the controller and forwards
them to N viewers of its own. Both processes' CPU time is read with psutil over the same
window and divided by the viewers each serves.

Last line, one JSON object: latency_p50_ms, latency_p95_ms (goals <= 1000, <= 2000),
viewers, uplink_streams (start commands the agent got: must be 1), controller_cpu_pct_per_viewer,
bare_relay_cpu_pct_per_viewer, ratio (bare / Vigil per viewer, goal >= 0.7), startup_ms
(goal <= 1500).

    python -m bench.live --quick        # 10 + 10 viewers, a 12 s window, < 60 s in all
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.live_probe import PROBE_JS, RESET_JS, STATS_JS, summary
from vigil_camsim.launcher import CamsimProcess

PASSWORD = "bench live password"
CAMERA = "cam1"
DEVICE = "dev1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]


# --- child processes ------------------------------------------------------------------------


def _answer_stats(conn: Connection, stats: Callable[[], dict[str, int]]) -> None:
    """Answer "stats" until the parent says anything else (or goes away)."""
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg != "stats":
            return
        conn.send(stats())


def _controller_process(data_dir: str, conn: Connection) -> None:
    """The controller as `serve` builds it (gRPC + HTTP), until the parent says stop."""
    from controller.assembly import Parts, build_controller
    from controller.clock import SystemClock
    from controller.config import ControllerConfig
    from controller.grants.policy import default_policy
    from controller.users import create_user

    config = ControllerConfig.model_validate(
        {
            "data_dir": data_dir,
            "grpc": {"listen": "127.0.0.1:0"},
            "http": {"listen": "127.0.0.1:0"},
        }
    )
    clock = SystemClock()
    controller = build_controller(config, clock, Parts(http=True))
    controller.start()
    create_user(
        controller.engine, clock, "op", "wudu", "operator", PASSWORD, policy=default_policy()
    )
    http = next(c for c in controller.components if hasattr(c, "base_url"))
    conn.send((controller.grpc_port, http.base_url))
    hub = controller.live
    assert hub is not None
    _answer_stats(conn, lambda: {"starts": hub.starts_sent, "viewers": hub.viewers(CAMERA)})
    controller.stop(grace_s=1.0)


def _agent_process(work: str, rtsp_url: str, grpc_port: int, conn: Connection) -> None:
    """The agent's capture with its live tee and Feed client (no uplink: live only)."""
    from edge_agent.app import Agent
    from edge_agent.capture import CaptureSettings
    from edge_agent.clock import SystemClock
    from edge_agent.config import AgentConfig, BufferConfig, CameraConfig
    from edge_agent.live import LiveClient
    from edge_agent.uplink.client import connect, load_credentials

    root = Path(work)
    cfg = AgentConfig(
        device_id=DEVICE,
        data_dir=str(root / "agent"),
        cameras=[CameraConfig(id=CAMERA, url=rtsp_url, segment_seconds=2.0)],
        buffer=BufferConfig(quota_bytes=256 * 1024 * 1024),
    )
    clock = SystemClock()
    agent = Agent.open(cfg, clock, CaptureSettings(state_dir=root / "agent" / "capture"))
    certs = root / "certs"
    creds = load_credentials(certs / "ca.crt", certs / f"{DEVICE}.crt", certs / f"{DEVICE}.key")
    address = f"127.0.0.1:{grpc_port}"
    channel = connect(address, creds, 64 * 1024)
    live = LiveClient(agent.live, lambda: address, lambda _a: channel, clock)
    agent.add_component(live)
    agent.start()
    live.connected.wait(30)
    conn.send("ready")
    _answer_stats(conn, lambda: {"starts": live.starts})
    agent.stop()


def _relay_process(source: str, hello: str, conn: Connection) -> None:
    """The bare relay: one WebSocket in (a viewer of the controller), every byte out to each
    of its own viewers. No grants, no status, no queues bounded per viewer: the floor."""
    import websockets
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import broadcast, serve

    async def run() -> None:
        viewers: set[Any] = set()

        async def handler(ws: Any) -> None:
            viewers.add(ws)
            try:
                await ws.wait_closed()
            finally:
                viewers.discard(ws)

        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            conn.send(port)
            async with connect(source, max_size=None) as upstream:
                await upstream.send(hello)
                try:
                    async for message in upstream:
                        if isinstance(message, bytes):
                            broadcast(viewers, message)
                except websockets.ConnectionClosed:
                    pass

    asyncio.run(run())


# --- the parent -----------------------------------------------------------------------------


def _setup(work: Path) -> Path:
    """A controller data dir with the city PKI, dev1 owning cam1, and dev1's certificate."""
    from controller.catalog import Catalog, make_engine
    from controller.clock import SystemClock
    from controller.grants.keys import ensure_keys
    from controller.pki import init_pki, issue_device_cert, load_ca, utc_from_us, write_device_files

    data = work / "controller"
    now = utc_from_us(SystemClock().now_us())
    init_pki(data, [], now)
    engine = make_engine(f"sqlite:///{data / 'catalog.db'}")
    try:
        catalog = Catalog(engine, SystemClock())
        catalog.upsert_device(DEVICE, "wudu", "village1", "nvr")
        catalog.upsert_camera(CAMERA, DEVICE)
    finally:
        engine.dispose()
    ensure_keys(data)
    ca = load_ca(data)
    pair = issue_device_cert(ca, DEVICE, now)
    write_device_files(work / "certs", DEVICE, pair, ca.cert_pem)
    return data


class Child:
    def __init__(self, target: Any, *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(*args, child), daemon=True)
        self.proc.start()
        self.ps = psutil.Process(self.proc.pid)

    def recv(self, timeout: float) -> Any:
        if not self.pipe.poll(timeout):
            raise RuntimeError(f"{self.proc.name} did not answer in {timeout:.0f} s")
        return self.pipe.recv()

    def ask(self, what: str) -> Any:
        self.pipe.send(what)
        return self.recv(10)

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        try:
            self.pipe.send("stop")
        except OSError:
            pass
        self.proc.join(15)
        if self.proc.is_alive():
            self.proc.kill()


async def _viewer(url: str, hello: str | None, stop: asyncio.Event, got: list[int]) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None) as ws:
        if hello is not None:
            await ws.send(hello)
        i = len(got)
        got.append(0)
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            if isinstance(message, bytes):
                got[i] += len(message)


class Viewers:
    """N viewers of the controller and N of the relay, on an event loop in a thread (the
    Playwright sync API owns the main thread)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stop_event = asyncio.Event()
        self.vigil: list[int] = []
        self.bare: list[int] = []
        self.futures: list[Any] = []

    def open(self, url: str, hello: str | None, into: list[int], count: int) -> None:
        for _ in range(count):
            coro = _viewer(url, hello, self.stop_event, into)
            self.futures.append(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        for f in self.futures:
            try:
                f.result(10)
            except Exception as exc:  # a viewer that failed shows as zero bytes
                print(f"viewer ended: {exc!r}")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def live_login(base: str, user: str, password: str, camera: str) -> tuple[str, str]:
    """Log in and mint a one-hour live grant for `camera`: (session, the socket's hello)."""
    r = httpx.post(f"{base}/api/v1/login", json={"user_id": user, "password": password})
    r.raise_for_status()
    token = r.json()["token"]
    now = int(time.time() * 1e6)
    g = httpx.post(
        f"{base}/api/v1/grants",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "operations": ["live"],
            "cameras": [camera],
            "from_us": now - 60_000_000,
            "to_us": now + 3_600_000_000,
            "purpose": "bench.live",
        },
    )
    g.raise_for_status()
    return token, json.dumps({"session": token, "grant": g.json()["token"]})


def run(viewers: int, window_s: float, work: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    data = _setup(work)
    cams = CamsimProcess.start(
        1,
        width=640,
        height=360,
        fps=25,
        bitrate_kbps=1000,
        gop_seconds=1.0,
        loop_seconds=2.0,
        stamp_wallclock=True,
        log_path=work / "camsim.log",
    )
    children: list[Child] = []
    crowd: Viewers | None = None
    try:
        ctl = Child(_controller_process, str(data))
        children.append(ctl)
        grpc_port, base = ctl.recv(60)
        agent = Child(_agent_process, str(work), cams.url(1), grpc_port)
        children.append(agent)
        agent.recv(60)
        token, hello = live_login(base, "op", PASSWORD, CAMERA)
        ws_url = base.replace("http://", "ws://") + f"/api/v1/live/{CAMERA}/ws"
        relay = Child(_relay_process, ws_url, hello)
        children.append(relay)
        relay_port = relay.recv(30)
        crowd = Viewers()
        crowd.open(ws_url, hello, crowd.vigil, viewers)
        crowd.open(f"ws://127.0.0.1:{relay_port}/", None, crowd.bare, viewers)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 900, "height": 700})
            page.goto(base + "/")
            page.fill("#login-user", "op")
            page.fill("#login-password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_selector("#video", state="visible")
            page.evaluate(PROBE_JS, {"camera": CAMERA, "session": token})
            page.wait_for_function("() => window.__probe.frames > 25", timeout=30_000)
            startup_ms = page.evaluate(STATS_JS)["first_ms"]
            time.sleep(1.0)
            page.evaluate(RESET_JS)
            vigil_bytes, bare_bytes = sum(crowd.vigil), sum(crowd.bare)
            t0, c0, r0 = time.monotonic(), ctl.cpu_s(), relay.cpu_s()
            time.sleep(window_s)
            elapsed = time.monotonic() - t0
            c1, r1 = ctl.cpu_s(), relay.cpu_s()
            vigil_bytes, bare_bytes = sum(crowd.vigil) - vigil_bytes, sum(crowd.bare) - bare_bytes
            stats = page.evaluate(STATS_JS)
            browser.close()
        hub = ctl.ask("stats")
        uplink = agent.ask("stats")["starts"]
    finally:
        if crowd is not None:
            crowd.close()
        for child in reversed(children):
            child.stop()
        cams.stop()
    lat = summary(stats)
    served = viewers + 2  # the N viewers, the browser, the relay's own feed
    ctl_pct = 100 * (c1 - c0) / elapsed / served
    bare_pct = 100 * (r1 - r0) / elapsed / viewers
    print(
        f"window {elapsed:.1f} s: controller {100 * (c1 - c0) / elapsed:.1f} % of a core for "
        f"{served} viewers ({vigil_bytes * 8 / elapsed / 1e6 / viewers:.2f} Mbit/s each), "
        f"bare relay {100 * (r1 - r0) / elapsed:.1f} % for {viewers} "
        f"({bare_bytes * 8 / elapsed / 1e6 / viewers:.2f} Mbit/s each); glass-to-glass over "
        f"{lat['count']:.0f} frames ({stats['unmatched']} unmatched); hub viewers at the end "
        f"{hub['viewers']}, hub starts {hub['starts']}"
    )
    if lat["count"] < 10 or vigil_bytes == 0 or bare_bytes == 0:
        raise RuntimeError(f"nothing measured: {stats} vigil {vigil_bytes} bare {bare_bytes}")
    return {
        "latency_p50_ms": round(lat["p50"], 1),
        "latency_p95_ms": round(lat["p95"], 1),
        "viewers": served,
        "uplink_streams": uplink,
        "controller_cpu_pct_per_viewer": round(ctl_pct, 3),
        "bare_relay_cpu_pct_per_viewer": round(bare_pct, 3),
        "ratio": round(bare_pct / ctl_pct, 3) if ctl_pct > 0 else None,
        "startup_ms": round(float(startup_ms), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (< 60 s)")
    parser.add_argument("--viewers", type=int, help="WebSocket viewers of each server")
    parser.add_argument("--window", type=float, help="measurement window, seconds")
    args = parser.parse_args(argv)
    viewers = args.viewers or (10 if args.quick else 20)
    window = args.window or (12.0 if args.quick else 30.0)
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-live-"))
    try:
        result = run(viewers, window, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
