"""The agent installs and imports without the controller extra.

`pip install vigil` (no `[controller]`) is what goes onto a village NVR: every `edge_agent`
(and `provisioning`) module must import with the controller's dependencies absent. The test
blocks them with a meta-path finder in a fresh interpreter, so an installed sqlmodel in the
dev venv cannot hide an import that would break on the NVR.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Import names of the controller extra's distributions.
CONTROLLER_ONLY = {
    "sqlmodel": "sqlmodel",
    "SQLAlchemy": "sqlalchemy",
    "argon2-cffi": "argon2",
    "boto3": "boto3",
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "psycopg[binary]": "psycopg",
    "prometheus-client": "prometheus_client",
    "alembic": "alembic",
    "websockets": "websockets",
    "matplotlib": "matplotlib",
}

# GStreamer's Python bindings come from Debian (python3-gi), not pip; only the camera
# emulator's GStreamer modules need them and they are run by Debian's python3.
NEEDS_SYSTEM_GI = {"vigil_camsim.gst_server"}

PROBE = r"""
import importlib, importlib.abc, sys
blocked = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"blocked controller-only module {name}", name=name)
        return None
sys.meta_path.insert(0, Block())
failed = []
for module in sys.argv[2:]:
    try:
        importlib.import_module(module)
    except Exception as exc:
        failed.append(f"{module}: {type(exc).__name__}: {exc}")
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


def modules(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if name not in NEEDS_SYSTEM_GI:
            out.append(name)
    return out


def test_controller_extra_lists_the_blocked_distributions() -> None:
    """The block list is the controller extra: a new controller dependency is blocked too."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extra = {
        d.split(">")[0].split("=")[0].strip()
        for d in project["optional-dependencies"]["controller"]
    }
    assert extra == set(CONTROLLER_ONLY)
    base = " ".join(project["dependencies"]).lower()
    assert "sqlmodel" not in base and "sqlalchemy" not in base


def test_every_agent_module_imports_without_the_controller_extra() -> None:
    names = modules("edge_agent") + modules("provisioning") + modules("vigil_common")
    assert len(names) > 30
    result = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(CONTROLLER_ONLY.values()), *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_probe_catches_a_controller_import() -> None:
    """The blocker works: a controller module (which imports sqlmodel) fails under it."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "sqlmodel", "controller.catalog"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1 and "sqlmodel" in result.stdout, result.stdout + result.stderr
