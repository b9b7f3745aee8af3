"""Factories for the components `vigil-controller serve` runs besides ingest.

Each takes the built `Controller` (its config, clock and catalog) and returns an object with
start()/stop(); `controller.app.default_components` lists them. Kept apart from `app.py` so
adding a concern means adding a factory here, not editing the core wiring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.api.wiring import http_component as http
from controller.catalog import Catalog
from controller.fleet.component import FleetComponent

if TYPE_CHECKING:
    from controller.app import Controller


class CatalogDirectory:
    """The fleet's device registry, read from the catalog: device id -> (county, site).

    Looked up per message of an unknown-to-the-monitor device only (the monitor keeps its own
    table), so a database read here is not on the hot path.
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def lookup(self, device_id: str) -> tuple[str, str] | None:
        device = self._catalog.device(device_id)
        if device is None:
            return None
        return (device.county, device.site)


__all__ = ["CatalogDirectory", "fleet", "http"]


def fleet(controller: Controller) -> FleetComponent:
    """MQTT fleet health and commands (a managed Mosquitto when no broker is configured)."""
    return FleetComponent(
        controller.config.mqtt,
        controller.config.data_path,
        controller.clock,
        CatalogDirectory(controller.catalog),
    )
