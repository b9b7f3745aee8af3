"""The bottom layer every controller part is built on: `Core`, `Component`, `PeriodicTask`,
`StartupError`.

`Core` is what every builder needs (configuration, clock, database engine, catalog, object
store), opened once by `open_core`. A `Component` is anything started after the core and
stopped before it. `PeriodicTask` is the one background loop the controller uses for work
done every N seconds (ingest housekeeping, the retention sweep, the HTTP API's audit flush,
the audit witness): a failing run is logged and retried next interval, so a database outage
never kills a thread.

This module imports only the bottom packages (config, clock, catalog, storage); builders
(`controller.components`, `controller.api.wiring`, `controller.scheduler.wiring`) take a
`Core` and the parts they need, and `controller.assembly` calls them in order.

Errors: `StartupError` for anything that stops a controller from starting (bad PKI files,
unusable database or storage URL, port in use, missing keys); the message says what to fix.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.engine import Engine

from controller.catalog import Catalog, make_engine
from controller.clock import Clock
from controller.config import ControllerConfig
from controller.redact import redact_url
from controller.storage import ObjectStore, open_store

log = logging.getLogger("vigil.controller")


class StartupError(Exception):
    """The controller cannot start; the message says what to fix."""


class Component(Protocol):
    """Anything the controller starts after its core and stops before it (MQTT fleet, HTTP)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class PeriodicTask:
    """Runs `job` every `interval_s` in a daemon thread until stopped.

    `run_at_start`: once in `start()`, in the caller's thread (ingest housekeeping clears
    what a previous run left before serving). `run_at_stop`: once more after the loop ended
    (the last audit tallies of a clean stop). A job that raises is logged and retried at the
    next interval; it never ends the loop.
    """

    def __init__(
        self,
        name: str,
        interval_s: float,
        job: Callable[[], object],
        *,
        run_at_start: bool = False,
        run_at_stop: bool = False,
        join_timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.interval_s = interval_s
        self._job = job
        self._run_at_start = run_at_start
        self._run_at_stop = run_at_stop
        self._join_timeout_s = join_timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> None:
        """One run of the job, now, in this thread (errors propagate)."""
        self._job()

    def _guarded(self) -> None:
        try:
            self.run_once()
        except Exception:
            log.exception("%s failed; will retry in %.0f s", self.name, self.interval_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._guarded()

    def start(self) -> None:
        if self._run_at_start:
            self.run_once()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._join_timeout_s)
        if self._run_at_stop:
            self._guarded()

    def __repr__(self) -> str:
        return f"PeriodicTask({self.name!r}, every {self.interval_s:g} s)"


@dataclass(frozen=True, slots=True)
class Core:
    """What every part of a controller is built on; `dispose()` releases the database."""

    config: ControllerConfig
    clock: Clock
    engine: Engine
    catalog: Catalog
    store: ObjectStore

    def dispose(self) -> None:
        self.engine.dispose()


def ensure_data_dir(config: ControllerConfig) -> None:
    """Create the data directory (StartupError naming it when that is impossible)."""
    data = config.data_path
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"data_dir {data}: {exc.strerror}") from exc


def open_core(config: ControllerConfig, clock: Clock) -> Core:
    """The database (an empty one migrated; one on an older schema refused with the command
    to run) and the object store the configuration names."""
    ensure_data_dir(config)
    try:
        engine = make_engine(config.resolved_database_url())
    except Exception as exc:
        raise StartupError(f"database {redact_url(config.resolved_database_url())}: {exc}") from exc
    try:
        store = open_store(config.resolved_storage_url())
    except ValueError as exc:
        engine.dispose()
        raise StartupError(f"storage: {exc}") from exc
    return Core(config, clock, engine, Catalog(engine, clock), store)


__all__ = [
    "Component",
    "Core",
    "PeriodicTask",
    "StartupError",
    "ensure_data_dir",
    "open_core",
]
