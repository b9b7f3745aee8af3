"""docs/configuration.md is generated from the configuration models and must match them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from controller.config import ControllerConfig
from edge_agent.config import AgentConfig
from vigil_common.env_overrides import env_name, key_paths

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"


def test_configuration_page_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_config_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_env_override_is_documented() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for model in (ControllerConfig, AgentConfig):
        for path in key_paths(model):
            assert f"`{env_name(path)}`" in text, env_name(path)
