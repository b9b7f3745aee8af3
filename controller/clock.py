"""The controller's clock: the shared implementation (vigil_common/clock.py), re-exported so
the controller's modules keep importing these names from here."""

from __future__ import annotations

from vigil_common.clock import Clock, ManualClock, SystemClock

__all__ = ["Clock", "ManualClock", "SystemClock"]
