"""`VIGIL_*` environment overrides: only names that spell a configuration key are configuration.

An unrelated `VIGIL_REPO=...` in an operator's shell used to stop the controller with
"repo: Extra inputs are not permitted"; now it is ignored, with one warning naming it.
"""

from __future__ import annotations

import logging

import pytest

from controller.config import ControllerConfig
from controller.config import parse_config as parse_controller
from edge_agent.config import AgentConfig
from edge_agent.config import parse_config as parse_agent
from vigil_common.env_overrides import apply_env_overrides, env_name, key_paths

AGENT = 'device_id = "nvr-1"\n[[cameras]]\nid = "c"\nurl = "rtsp://h/1"\n'


def test_unrelated_vigil_variables_do_not_stop_the_controller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {
        "VIGIL_REPO": "/src/vigil",
        "VIGIL_TEST_PG_URL": "postgresql://x",
        "VIGIL_GRPC__LISTEN": "127.0.0.1:9",
    }
    with caplog.at_level(logging.WARNING, logger="controller.config"):
        config = parse_controller("", "t.toml", env)
    assert config.grpc.listen == "127.0.0.1:9"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "VIGIL_REPO" in warnings[0] and "VIGIL_TEST_PG_URL" in warnings[0]
    assert "VIGIL_GRPC__LISTEN" not in warnings[0]


def test_unrelated_vigil_variables_do_not_stop_the_agent(caplog: pytest.LogCaptureFixture) -> None:
    env = {"VIGIL_REPO": "x", "VIGIL_UPLINK__NO_SUCH_KEY": "1", "VIGIL_UPLINK__RATE_BPS": "9000"}
    with caplog.at_level(logging.WARNING, logger="edge_agent.config"):
        config = parse_agent(AGENT, "agent.toml", env)
    assert config.uplink.rate_bps == 9000
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "VIGIL_UPLINK__NO_SUCH_KEY" in warnings[0], warnings


def test_no_warning_when_every_variable_is_a_key(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        parse_agent(AGENT, "agent.toml", {"VIGIL_LOG_LEVEL": "DEBUG", "VIGIL_CONFIG": "/x"})
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_top_level_and_list_keys_are_settable() -> None:
    env = {"VIGIL_DATA_DIR": "/srv/v", "VIGIL_HTTP__TRUSTED_PROXIES": "10.2.0.5,10.3.0.0/24"}
    config = parse_controller("", "t.toml", env)
    assert config.data_dir == "/srv/v"
    assert config.http.trusted_proxies == ["10.2.0.5", "10.3.0.0/24"]


def test_a_bad_value_of_a_real_key_is_still_an_error() -> None:
    from controller.config import ConfigError

    with pytest.raises(ConfigError, match="max_workers"):
        parse_controller("", "t.toml", {"VIGIL_GRPC__MAX_WORKERS": "lots"})


def test_tables_in_lists_are_not_env_keys() -> None:
    names = {env_name(p) for p in key_paths(AgentConfig)}
    assert "VIGIL_UPLINK__RATE_BPS" in names and "VIGIL_DEVICE_ID" in names
    assert not any(n.startswith("VIGIL_CAMERAS") for n in names)


def test_overlay_does_not_change_its_input() -> None:
    data = {"grpc": {"listen": "a:1"}}
    overlay = apply_env_overrides(
        data, {"VIGIL_GRPC__LISTEN": "b:2", "VIGIL_X": "1"}, ControllerConfig
    )
    assert data == {"grpc": {"listen": "a:1"}}
    assert overlay.data == {"grpc": {"listen": "b:2"}}
    assert overlay.ignored == ("VIGIL_X",)
