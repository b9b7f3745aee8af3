"""Unit tests start no server: `make test-unit` runs on a machine with nothing installed but the
venv. A unit test that asks for a real-component fixture (tests/fixtures: cameras, Mosquitto,
SeaweedFS, PostgreSQL, Chromium) fails collection, naming the test and the fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    bad = []
    for item in items:
        if UNIT not in Path(str(item.path)).parents:
            continue
        info = getattr(item, "_fixtureinfo", None)
        for name, defs in (info.name2fixturedefs if info else {}).items():
            if any(getattr(d.func, "__module__", "").startswith("tests.fixtures") for d in defs):
                bad.append(f"{item.nodeid} uses the server fixture {name!r}")
    if bad:
        raise pytest.UsageError(
            "unit tests must not start servers (move them to tests/integration):\n" + "\n".join(bad)
        )
