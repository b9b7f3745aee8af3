"""Two emulated cameras for 60 s through the `vigil-agent` process into its buffer (rig)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.clock import SystemClock
from edge_agent.model import SegmentFlag
from edge_agent.store import SegmentBuffer
from tests.integration.media import probe
from tests.support import ManagedProcess, wait_until
from vigil_camsim.launcher import CamsimProcess

RUN_S = 60
GOP_US = 1_000_000


@pytest.mark.rig
def test_two_cameras_for_a_minute(tmp_path: Path, camsim: Callable[..., CamsimProcess]) -> None:
    cams = camsim(cameras=2)
    data = tmp_path / "data"
    cameras = "".join(
        f'[[cameras]]\nid = "c{n}"\nurl = "{cams.url(n)}"\nsegment_seconds = 4\n' for n in (1, 2)
    )
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'device_id = "long"\ndata_dir = "{data}"\n{cameras}')
    started = time.time_ns() // 1000
    agent = ManagedProcess(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(cfg)], tmp_path / "agent.log"
    )
    deadline = started + RUN_S * 1_000_000
    wait_until(lambda: time.time_ns() // 1000 >= deadline, RUN_S + 5, "a minute of recording")
    agent.stop(timeout=20)
    stopped = time.time_ns() // 1000
    assert agent.proc.returncode == 0, agent.log_text()

    with SegmentBuffer.open(data / "buffer", 10**9, SystemClock()) as buffer:
        for cid in ("c1", "c2"):
            segs = buffer.segments(cid)
            for seg in segs:
                facts = probe(buffer.path_of(seg))
                assert facts["first_key"] is True and facts["codec"] == "h264", seg
                assert isinstance(facts["frames"], int) and facts["frames"] > 0, seg
            assert buffer.verify_chain(cid, check_files=True) == []
            # Only the emulator's own starvation on a loaded machine may leave a gap (it then
            # sends on with a jump in its timestamps); the agent must account for it.
            gaps = buffer.gaps(cid)
            assert all(g.reason.startswith("timestamps jumped forwards") for g in gaps), gaps
            spans = sorted(
                [(s.start_us, s.end_us) for s in segs] + [(g.start_us, g.end_us) for g in gaps]
            )
            assert all(b[0] == a[1] for a, b in zip(spans, spans[1:], strict=False))
            assert all(
                s.flags == SegmentFlag.NONE
                for s in segs[:-1]
                if s.start_us not in {g.end_us for g in gaps}
            )
            assert segs[-1].flags == SegmentFlag.TRUNCATED
            total = sum(s.duration_us for s in segs) + sum(g.end_us - g.start_us for g in gaps)
            # Recording runs from the first keyframe after connecting to the stop: the sum of
            # durations is the wall time, short by at most the connection set-up and one GOP.
            assert stopped - started - 3 * GOP_US <= total <= stopped - started, total
            assert started <= segs[0].start_us <= started + 3 * GOP_US
            assert abs(segs[-1].end_us - stopped) <= GOP_US
