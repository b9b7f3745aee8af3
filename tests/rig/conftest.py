"""Fixtures of the rig tests: network namespaces with shaped links (netns.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rig.netns import NetRig


@pytest.fixture
def netrig() -> Iterator[NetRig]:
    """A controller namespace and its agents' links, torn down after the test."""
    net = NetRig()
    try:
        yield net
    finally:
        net.close()
