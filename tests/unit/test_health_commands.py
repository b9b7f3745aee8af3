"""Agent-side command validation: every bad command is refused with a clear message."""

from __future__ import annotations

import pytest

from edge_agent.config import parse_config
from edge_agent.health import commands as cm
from edge_agent.model import Hold
from protos.vigil.v1 import common_pb2, fleet_pb2

T0 = 1_800_000_000_000_000
S = 1_000_000
TOML = """
device_id = "nvr-1"
county = "wudu"
site = "v001"
[[cameras]]
id = "cam1"
url = "rtsp://10.0.0.5/s"
"""
CONFIG = parse_config(TOML, "test")


def payload(**kw: object) -> bytes:
    return fleet_pb2.Command(**kw).SerializeToString()  # type: ignore[arg-type]


def rng(start: int = T0, end: int = T0 + 60 * S) -> dict[str, object]:
    return {"range": common_pb2.TimeRange(start_unix_us=start, end_unix_us=end)}


def test_valid_commands() -> None:
    hold = cm.parse_command("hold", payload(camera_id="cam1", case_id="K1", **rng()), CONFIG)
    assert hold == cm.HoldRequest("cam1", T0, T0 + 60 * S, "K1")
    rel = cm.parse_command("release", payload(hold_id="h1"), CONFIG)
    assert rel == cm.ReleaseRequest("h1", "", 0, 0, "")
    assert cm.parse_command("rebirth", b"", CONFIG) == cm.RebirthRequest()
    up = cm.parse_command(
        "upload_range", payload(camera_id="cam1", traffic_class=1, **rng()), CONFIG
    )
    assert isinstance(up, cm.UploadRangeRequest) and up.traffic_class == 1
    new = cm.parse_command("reconfigure", payload(config_toml="log_level='DEBUG'\n" + TOML), CONFIG)
    assert isinstance(new, cm.ReconfigureRequest) and new.config.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("verb", "body", "message"),
    [
        ("explode", b"", "unknown verb"),
        ("hold", b"\xff\xff\xff", "malformed command payload"),
        ("hold", b"\x00" * (cm.MAX_COMMAND_BYTES + 1), "larger than"),
        ("hold", payload(verb="release"), "does not match topic verb"),
        ("hold", payload(camera_id="cam1", case_id="K", **rng(T0, T0)), "0 < start < end"),
        (
            "hold",
            payload(camera_id="cam1", case_id="K", **rng(T0, T0 + 40 * 86400 * S)),
            "longer than 31 days",
        ),
        ("hold", payload(camera_id="cam9", case_id="K", **rng()), "no camera 'cam9'"),
        ("hold", payload(camera_id="cam1", **rng()), "case_id is required"),
        ("hold", payload(camera_id="cam1", case_id="x" * 200, **rng()), "at most 128"),
        ("release", payload(camera_id="cam1", **rng()), "case_id is required"),
        ("reconfigure", payload(config_toml=""), "needs the new agent.toml"),
        ("reconfigure", payload(config_toml="device_id = ["), "not valid TOML"),
        ("reconfigure", payload(config_toml="bogus_key = 1\n" + TOML), "invalid configuration"),
        ("reconfigure", payload(config_toml=TOML.replace("nvr-1", "nvr-2")), "cannot change"),
        ("upload_range", payload(camera_id="cam1"), "0 < start < end"),
    ],
)
def test_bad_commands_refused(verb: str, body: bytes, message: str) -> None:
    with pytest.raises(cm.CommandRejected, match=message):
        cm.parse_command(verb, body, CONFIG)


def test_holds_to_release_by_id_or_by_match() -> None:
    holds = [Hold("h1", "cam1", T0, T0 + S, "K1"), Hold("h2", "cam1", T0, T0 + S, "K2")]
    assert cm.holds_to_release(holds, cm.ReleaseRequest("h2", "", 0, 0, "")) == ["h2"]
    by_match = cm.ReleaseRequest("", "cam1", T0, T0 + S, "K1")
    assert cm.holds_to_release(holds, by_match) == ["h1"]
    assert cm.holds_to_release(holds, cm.ReleaseRequest("nope", "", 0, 0, "")) == []
