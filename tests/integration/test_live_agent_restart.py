"""An agent killed with kill -9 while someone watches: the viewer reads "agent unreachable"
within seconds, and live again (new media from a keyframe) after the agent is restarted, on
the same WebSocket: nobody reloads anything.

The agent here is `python -m edge_agent run` as installed (a process of its own, leased uplink,
live feed on its control route), so the kill is real: the kernel closes its TCP connection and
the controller's Feed stream ends.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.integration.test_live_view import World, decode, read_media, watcher
from tests.integration.test_live_view import world as world
from tests.support import ManagedProcess


def _agent_toml(world: World, path: Path) -> Path:
    dev = world.dev2
    path.write_text(
        f'device_id = "dev2"\ndata_dir = "{world.tmp / "agent-restart"}"\n'
        f'[[cameras]]\nid = "cam3"\nurl = "{world.cams.url(1)}"\nsegment_seconds = 2\n'
        f'[uplink]\ncontroller = "127.0.0.1:{world.controller.grpc_port}"\n'
        f'ca_cert = "{dev.ca_path}"\nclient_cert = "{dev.cert_path}"\n'
        f'client_key = "{dev.key_path}"\n'
    )
    return path


def _states_until(ws: object, want: str, limit: float, media: bytearray | None = None) -> float:
    """Seconds until a status says `want` (and, with `media`, > 20 kB of media arrived)."""
    start = time.monotonic()
    seen: list[str] = []
    while time.monotonic() - start < limit:
        data, texts = read_media(ws, 0.5)  # type: ignore[arg-type]
        if media is not None:
            media += data
        seen += [t["state"] for t in texts if "state" in t]
        if want in seen and (media is None or len(media) > 20_000):
            return time.monotonic() - start
    raise AssertionError(f"no {want!r} within {limit} s: {seen[-10:]}")


def test_an_agent_killed_mid_view_reads_unreachable_then_live_after_restart(
    world: World, tmp_path: Path
) -> None:
    config = _agent_toml(world, tmp_path / "agent.toml")
    argv = [sys.executable, "-m", "edge_agent", "run", "--config", str(config)]
    log = tmp_path / "agent.log"
    agent = ManagedProcess(argv, log)
    try:
        ws, _ = watcher(world, "cam3")
        with ws:
            _states_until(ws, "live", 40, bytearray())
            agent.kill9()
            took = _states_until(ws, "agent_unreachable", 15)
            print(f"live: agent unreachable shown {took:.1f} s after kill -9")
            assert took < 8, f"unreachable shown {took:.1f} s after the kill"
            agent.stop()
            agent = ManagedProcess(argv, log)
            media = bytearray()
            back = _states_until(ws, "live", 40, media)
            print(f"live: live again {back:.1f} s after the agent's restart")
            frames = decode(bytes(media))
            assert frames and frames[0].key_frame, "the feed did not resume at a keyframe"
            assert world.hub.viewers("cam3") == 1
    finally:
        agent.kill9()
        agent.stop()
