"""`make lint` holds in every CI run: ruff (lint and format) and mypy --strict are clean."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PACKAGES = [
    "edge_agent",
    "controller",
    "provisioning",
    "vigil_common",
    "vigil_camsim",
    "bench",
    "tests",
    "scripts",
]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_lint_and_format_are_clean() -> None:
    lint = run(str(BIN / "ruff"), "check", ".")
    assert lint.returncode == 0, lint.stdout[-4000:]
    fmt = run(str(BIN / "ruff"), "format", "--check", *PACKAGES)
    assert fmt.returncode == 0, fmt.stdout[-4000:]


def test_mypy_strict_is_clean() -> None:
    result = run(
        str(BIN / "mypy"),
        "edge_agent",
        "controller",
        "provisioning",
        "vigil_common",
        "vigil_camsim",
        "protos",
        "bench",
        "scripts",
    )
    assert result.returncode == 0, result.stdout[-4000:]
