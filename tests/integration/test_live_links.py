"""Live view and the scheduler's links, every part real (camsim, the agent's tee, mutual-TLS
Feed, the controller with its scheduler, WebSocket viewers): a running feed is planned as LIVE
demand on its device; a link that already carries its limit of live streams, or whose capacity
is below the camera's rate, answers "link busy" (no start reaches the agent), and a waiting
viewer goes live by itself once the link has room, without reconnecting.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from controller.assembly import Controller, Parts, build_controller
from controller.clock import SystemClock as ControllerClock
from controller.config import ControllerConfig
from controller.grants.keys import ensure_keys
from controller.grants.policy import default_policy
from controller.live.feed import LiveOptions
from controller.scheduler.model import Device, Link
from controller.scheduler.options import SchedulerOptions
from controller.scheduler.topology import Topology
from controller.users import create_user
from edge_agent.app import Agent
from edge_agent.live import LiveClient
from tests.fixtures.camsim import TEST_DEFAULTS
from tests.integration.test_live_view import (
    PASSWORD,
    grant,
    live_agent,
    open_view,
    read_media,
    session,
)
from tests.integration.test_uplink_support import make_site
from tests.support import wait_until
from vigil_camsim.launcher import CamsimProcess, check_gstreamer


@dataclass
class Rig:
    controller: Controller
    live: LiveClient
    base: str

    @property
    def ws_base(self) -> str:
        return self.base.replace("http://", "ws://")

    def topology(self, village_bps: int) -> None:
        assert self.controller.scheduler is not None
        self.controller.scheduler.set_topology(
            Topology(
                links=(
                    Link("city", None, 1_000_000_000),
                    Link("v1", "city", village_bps, live_reserve=0.5),
                ),
                devices=(Device("dev1", "v1"),),
            )
        )

    def live_bps(self) -> int:
        assert self.controller.scheduler is not None
        snap = self.controller.scheduler.snapshot()
        return next((d.rates_bps.get("live", 0) for d in snap.devices if d.device_id == "dev1"), 0)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    problem = check_gstreamer()
    if problem is not None:
        pytest.fail(f"camsim cannot run: {problem}", pytrace=False)
    tmp = tmp_path_factory.mktemp("live-links")
    site = make_site(tmp, cameras=("cam1", "cam2"))
    ensure_keys(site.data_dir)
    config = ControllerConfig.model_validate(
        {
            "data_dir": str(site.data_dir),
            "grpc": {"listen": "127.0.0.1:0"},
            "http": {"listen": "127.0.0.1:0"},
        }
    )
    clock = ControllerClock()
    parts = Parts(http=True, scheduler=SchedulerOptions(tick_s=0.1, replan_interval_s=0.5))
    controller = build_controller(config, clock, parts)
    assert controller.live is not None and controller.http is not None
    controller.live.options = LiveOptions(
        linger_s=1.0, max_streams_per_link=1, assumed_bps=200_000, busy_retry_s=1.0
    )
    controller.start()
    cams = CamsimProcess.start(2, **{**TEST_DEFAULTS, "log_path": tmp / "camsim.log"})
    agent: Agent | None = None
    try:
        create_user(
            controller.engine, clock, "wd-op", "wudu", "operator", PASSWORD, policy=default_policy()
        )
        agent, live = live_agent(tmp, site.device, controller.grpc_port, cams, ("cam1", "cam2"))
        wait_until(
            lambda: all(s.connected for s in agent.statuses()) and len(agent.statuses()) == 2,
            30,
            "both cameras streaming at the agent",
        )
        yield Rig(controller, live, controller.http.base_url)
    finally:
        if agent is not None:
            agent.stop()
        cams.stop()
        controller.stop(grace_s=1.0)


def viewer(rig: Rig, camera: str) -> Any:
    token = session(rig.base)
    g = grant(rig.base, token, [camera])
    return open_view(rig, camera, {"session": token, "grant": g["token"]})  # type: ignore[arg-type]


def until_state(ws: Any, want: str, limit: float) -> tuple[dict[str, Any], bytes]:
    """The first status saying `want` (and the media read meanwhile), within `limit` s."""
    deadline = time.monotonic() + limit
    media = b""
    seen: list[str] = []
    while time.monotonic() < deadline:
        data, texts = read_media(ws, 0.5)
        media += data
        for t in texts:
            seen.append(t.get("state", t.get("error", "?")))
            if t.get("state") == want:
                return t, media
    raise AssertionError(f"no {want!r} within {limit} s: {seen[-8:]}")


def test_the_link_limit_answers_link_busy_and_the_waiting_viewer_goes_live(rig: Rig) -> None:
    rig.topology(5_000_000)
    first = viewer(rig, "cam1")
    try:
        until_state(first, "live", 15)
        wait_until(lambda: rig.live_bps() > 0, 10, "the live feed planned as LIVE demand")
        starts = rig.live.starts
        second = viewer(rig, "cam2")
        with second:
            status, media = until_state(second, "link_busy", 5)
            assert "limit 1" in status["detail"], status
            time.sleep(1.5)
            assert rig.live.starts == starts, "a start reached the agent over a full link"
            first.close()
            _, media = until_state(second, "live", 15)  # same socket: nobody reconnects
            assert rig.live.starts == starts + 1
    finally:
        first.close()


def test_a_link_slower_than_the_camera_answers_link_busy(rig: Rig) -> None:
    wait_until(lambda: not rig.controller.live.feeds(), 10, "no feeds left")  # type: ignore[union-attr]
    wait_until(lambda: rig.live_bps() == 0, 10, "no live demand left")
    rig.topology(100_000)  # the test cameras send ~300 kbit/s (measured by the first test)
    starts = rig.live.starts
    ws = viewer(rig, "cam1")
    with ws:
        status, _ = until_state(ws, "link_busy", 5)
        assert "v1" in status["detail"] and "cannot carry" in status["detail"], status
        metrics = httpx.get(f"{rig.base}/metrics").text
    assert rig.live.starts == starts
    assert 'vigil_live_feeds{state="link_busy"} 1.0' in metrics, metrics[-3000:]
    assert "vigil_live_viewers 1.0" in metrics
    busy = [ln for ln in metrics.splitlines() if ln.startswith("vigil_live_link_busy_total")]
    assert busy and float(busy[0].split()[-1]) >= 2, busy  # this test's and the first's
    assert 'vigil_live_commands_total{command="start"}' in metrics
