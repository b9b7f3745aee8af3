"""The systemd units in deploy/systemd parse, carry the hardening docs/deployment.md promises,
and start the console scripts pyproject.toml really installs (a renamed script would otherwise
leave a city's service failing at boot)."""

from __future__ import annotations

import configparser
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "Restart": "on-failure",
    "KillMode": "control-group",
}
EXPECTED = {
    "vigil-controller.service": ("vigil-controller", "serve", "/var/lib/vigil-controller"),
    "vigil-agent.service": ("vigil-agent", "run", "/var/lib/vigil-agent"),
}


def console_scripts() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    scripts: dict[str, str] = data["project"]["scripts"]
    return scripts


def parse_unit(path: Path) -> configparser.ConfigParser:
    # strict=False: systemd allows repeated keys (ExecStartPre=, Environment=).
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return unit


def test_every_unit_in_the_directory_is_checked() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_unit_parses_with_hardening_and_a_real_entry_point(name: str) -> None:
    script, command, data_dir = EXPECTED[name]
    unit = parse_unit(UNITS / name)
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    service = unit["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{name}: {key}"
    assert service.get("User"), f"{name}: runs as root"
    assert data_dir in service.get("ReadWritePaths", "").split()
    assert unit["Install"].get("WantedBy") == "multi-user.target"
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == script and script in console_scripts()
    assert argv[1] == command
    config = argv[argv.index("--config") + 1]
    assert config.startswith("/etc/vigil/") and config.endswith(".toml")


def test_the_controller_unit_kills_the_managed_broker_with_it() -> None:
    service = parse_unit(UNITS / "vigil-controller.service")["Service"]
    # control-group: the managed Mosquitto child dies with the controller (not `process`).
    assert service["KillMode"] == "control-group"
    assert "--check-config" in service["ExecStartPre"]
