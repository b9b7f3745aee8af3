"""The developer tasks stay offline and match `make lint`: pre-commit hooks are local (the
venv's ruff and mypy, no hook repository fetched) and `make test-unit` runs only tests/unit."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pre_commit_hooks_are_local_and_use_the_venv() -> None:
    text = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    repos = re.findall(r"^\s*-\s*repo:\s*(\S+)", text, re.M)
    assert repos == ["local"], repos
    entries = re.findall(r"^\s*entry:\s*(.+)$", text, re.M)
    assert entries and all(e.startswith(".venv/bin/") for e in entries), entries
    joined = " ".join(entries)
    assert "ruff check" in joined and "ruff format" in joined and "mypy" in joined


def test_make_has_fmt_and_a_server_free_unit_target() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    unit = re.search(r"^test-unit:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert unit and unit.group(1).strip().endswith("pytest -q tests/unit"), unit
    fmt = re.search(r"^fmt:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert fmt and "ruff format" in fmt.group(1), fmt
