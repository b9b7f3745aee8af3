"""agent.toml parsing: strict, overridable, and errors that name the file and the field."""

from pathlib import Path

import pytest

from edge_agent.config import ConfigError, load_config, parse_config

GOOD = """
device_id = "nvr-wudu-001"
county = "wudu"
site = "v001"
[[cameras]]
id = "cam-1"
url = "rtsp://admin:s3cret@127.0.0.1:8554/cam/1"
[[cameras]]
id = "nvr-2"
kind = "nvr_folder"
path = "/srv/nvr/2"
segment_seconds = 6
"""


def test_good_config_parses_with_defaults() -> None:
    cfg = parse_config(GOOD, "agent.toml")
    assert cfg.device_id == "nvr-wudu-001"
    assert [c.id for c in cfg.cameras] == ["cam-1", "nvr-2"]
    assert cfg.cameras[0].segment_seconds == 10.0
    assert cfg.cameras[0].transport == "tcp"
    assert cfg.cameras[1].segment_seconds == 6
    assert cfg.cameras[0].read_pause_s == 0.25  # read in bursts (capture/pacing.py)
    paced = parse_config(GOOD.replace("segment_seconds = 6", "read_pause_s = 0"), "agent.toml")
    assert paced.cameras[1].read_pause_s == 0


def test_env_overrides_nested_values() -> None:
    cfg = parse_config(GOOD, "agent.toml", {"VIGIL_UPLINK__RATE_BPS": "4000000", "HOME": "/x"})
    assert cfg.uplink.rate_bps == 4_000_000


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('device_id = "a"\nbogus = 1\n', "bogus"),
        ('device_id = "a"\n[[cameras]]\nid = "c"\nurl = "http://h/x"\n', "rtsp://"),
        (
            'device_id = "a"\n[[cameras]]\nid = "c"\nurl = "rtsp://h/x"\nsegment_seconds = 1\n',
            "segment_seconds",
        ),
        (
            'device_id = "a"\n[[cameras]]\nid = "c"\nurl = "rtsp://h/x"\nsegment_seconds = 61\n',
            "segment_seconds",
        ),
        ('device_id = "a"\n[[cameras]]\nid = "c"\nkind = "nvr_folder"\n', "needs a path"),
        (
            'device_id = "a"\n[[cameras]]\nid = "c"\nurl = "rtsp://h/1"\n'
            '[[cameras]]\nid = "c"\nurl = "rtsp://h/2"\n',
            "duplicate",
        ),
        (
            'device_id = "a"\n[[cameras]]\nid = "c"\nurl = "rtsp://h/x"\nread_pause_s = -0.1\n',
            "read_pause_s",
        ),
        (
            'device_id = "a"\n[[cameras]]\nid = "c"\nurl = "rtsp://h/x"\nread_pause_s = 5\n',
            "read_pause_s",
        ),
        ('device_id = "../etc"\n', "device_id"),
        ("device_id = \n", "not valid TOML"),
        ("", "device_id"),
    ],
)
def test_bad_config_is_refused_with_a_clear_error(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "/etc/vigil/agent.toml")
    assert "/etc/vigil/agent.toml" in str(err.value)
    assert needle in str(err.value)


def test_error_never_contains_url_credentials() -> None:
    text = 'device_id = "a"\n[[cameras]]\nid = "c"\nurl = "http://admin:hunter2@h/x"\n'
    with pytest.raises(ConfigError) as err:
        parse_config(text, "agent.toml")
    assert "hunter2" not in str(err.value)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml"):
        load_config(missing, env={})
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="bin.toml"):
        load_config(binary, env={})
