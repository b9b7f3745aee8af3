"""Which devices the fleet view accepts: device id -> (county, site).

Only enrolled devices count (ARCHITECTURE: "Only enrolled devices talk to the controller");
the catalog's device registry implements DeviceDirectory in production.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["DeviceDirectory", "StaticDirectory"]


class DeviceDirectory(Protocol):
    """The registry of enrolled devices: device id -> (county, site), None when unknown."""

    def lookup(self, device_id: str) -> tuple[str, str] | None: ...


class StaticDirectory:
    """An in-memory registry (tests, benchmark; the catalog provides the real one)."""

    def __init__(self, devices: dict[str, tuple[str, str]] | None = None) -> None:
        self._devices = dict(devices or {})

    def add(self, device_id: str, county: str, site: str) -> None:
        self._devices[device_id] = (county, site)

    def lookup(self, device_id: str) -> tuple[str, str] | None:
        return self._devices.get(device_id)
