"""The agent tunes the garbage collector once it streams (edge_agent/__main__.py says why)."""

from __future__ import annotations

import gc

from edge_agent.__main__ import settle_collector


def test_settling_freezes_start_up_objects_and_makes_young_collections_rarer() -> None:
    before = gc.get_threshold()
    try:
        settle_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == 50_000 > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert gc.get_freeze_count() == 0
