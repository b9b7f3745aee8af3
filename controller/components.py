"""Factories for the components `vigil-controller serve` runs besides ingest.

Each takes the built `Controller` (its config, clock and catalog) and returns an object with
start()/stop(); `controller.app.default_components` lists them. Kept apart from `app.py` so
adding a concern means adding a factory here, not editing the core wiring.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from controller.api.wiring import http_component as http
from controller.catalog import Catalog
from controller.clock import Clock
from controller.fleet.alerts import AlertRules
from controller.fleet.component import FleetComponent
from controller.fleet.service import FleetOptions
from controller.retention import sweep_retention
from controller.storage import ObjectStore

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


__all__ = ["CatalogDirectory", "RetentionSweeper", "fleet", "http", "retention"]

log = logging.getLogger("vigil.controller.retention")


def fleet(controller: Controller) -> FleetComponent:
    """MQTT fleet health and commands (a managed Mosquitto when no broker is configured)."""
    rules = controller.config.fleet
    return FleetComponent(
        controller.config.mqtt,
        controller.config.data_path,
        controller.clock,
        CatalogDirectory(controller.catalog),
        FleetOptions(
            rules=AlertRules(
                clock_skew_s=rules.clock_skew_s,
                startup_grace_s=rules.startup_grace_s,
                frame_age_s=rules.frame_age_s,
            )
        ),
    )


class RetentionSweeper:
    """Runs the cloud retention sweep every `interval_s` in a background thread.

    The sweep itself never raises for store or database trouble (it reports it), so one bad
    run only delays deletions to the next; a crash mid-sweep is finished by the next run.
    """

    def __init__(self, catalog: Catalog, store: ObjectStore, clock: Clock, interval_s: float):
        self._catalog = catalog
        self._store = store
        self._clock = clock
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> None:
        report = sweep_retention(self._catalog, self._store, self._clock)
        if report.deleted or report.errors:
            log.info(
                "retention sweep: deleted %d segment(s), %d bytes; %d error(s)%s",
                len(report.deleted),
                report.deleted_bytes,
                len(report.errors),
                f": {report.errors[0]}" if report.errors else "",
            )

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_once()
            except Exception:
                log.exception("retention sweep failed; will retry next interval")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="retention-sweep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def retention(controller: Controller) -> RetentionSweeper:
    """The periodic cloud retention sweep (per-camera policy, holds respected)."""
    return RetentionSweeper(
        controller.catalog,
        controller.store,
        controller.clock,
        controller.config.retention.sweep_interval_s,
    )
