"""Wiring: build every part of a controller from its configuration, run it until SIGTERM.

Nothing here decides anything; it only connects the parts (catalog, object store, ingest
service, gRPC server, housekeeping, and any other `Component`) and owns their lifecycle.
Everything is built inside `build_controller`, never at import time, and the clock is passed
in, so tests build a controller in-process with a manual clock or run `vigil-controller serve`
as a subprocess.

Errors: `StartupError` for anything that stops a controller from starting (bad PKI files,
unusable database or storage URL, port in use); the message says what to fix.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

import grpc
from sqlalchemy.engine import Engine

from controller.catalog import Catalog, make_engine
from controller.clock import Clock, SystemClock
from controller.config import ControllerConfig
from controller.ingest.fairness import Shares
from controller.ingest.grpc_service import IngestServicer, mtls_credentials
from controller.ingest.rules import Limits
from controller.ingest.server import Registration, build_server
from controller.ingest.service import IngestService
from controller.ingest.slots import UploadSlots
from controller.ingest.staging import Staging
from controller.pki.certs import PkiError, load_cert, load_key
from controller.redact import redact_url
from controller.storage import ObjectStore, open_store
from protos.vigil.v1 import ingest_pb2_grpc

log = logging.getLogger("vigil.controller")

HOUSEKEEPING_INTERVAL_S = 10.0


class StartupError(Exception):
    """The controller cannot start; the message says what to fix."""


class Component(Protocol):
    """Anything the controller starts after its core and stops before it (MQTT fleet, HTTP)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def limits_from(config: ControllerConfig) -> Limits:
    ing = config.ingest
    return Limits(
        max_segment_bytes=ing.max_segment_bytes,
        max_chunk_bytes=ing.max_chunk_bytes,
        max_duration_us=int(ing.max_duration_s * 1_000_000),
        max_future_us=int(ing.max_future_s * 1_000_000),
    )


def shares_from(config: ControllerConfig) -> Shares:
    ing = config.ingest
    return Shares(
        pool=ing.max_concurrent_uploads,
        per_device=ing.max_uploads_per_device,
        reserve=ing.reserved_upload_slots,
        stall_s=ing.stall_timeout_s,
        staging_bytes=ing.staging_budget(),
        staging_entries=ing.max_staged_uploads_per_device,
    )


def load_tls(config: ControllerConfig) -> grpc.ServerCredentials:
    """Server credentials requiring client certificates from the city CA (files checked)."""
    cert_path, key_path, ca_path = config.tls_paths()
    try:
        cert, key, ca = cert_path.read_bytes(), key_path.read_bytes(), ca_path.read_bytes()
        load_cert(cert)
        load_cert(ca)
        load_key(key)
    except FileNotFoundError as exc:
        raise StartupError(
            f"TLS file {exc.filename} is missing: run `vigil-controller init --data-dir "
            f"{config.data_dir}` (or set grpc.server_cert/server_key/ca_cert)"
        ) from exc
    except (OSError, PkiError) as exc:
        raise StartupError(f"TLS files unusable: {exc}") from exc
    return mtls_credentials(cert, key, ca)


class Housekeeper:
    """Periodically cancels idle upload streams and removes abandoned or committed staging."""

    def __init__(self, service: IngestService, idle_timeout_s: float, staging_ttl_s: float) -> None:
        self._service = service
        self._idle = idle_timeout_s
        self._ttl = staging_ttl_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> None:
        reaped = self._service.slots.reap_idle(self._idle)
        if reaped:
            log.warning("cancelled %d upload stream(s) idle for over %.0f s", reaped, self._idle)
        removed = self._service.recover(self._ttl)
        if removed:
            log.info("removed %d stale staged upload(s)", removed)

    def _loop(self) -> None:
        while not self._stop.wait(HOUSEKEEPING_INTERVAL_S):
            try:
                self.run_once()
            except Exception:
                log.exception("ingest housekeeping failed; will retry")

    def start(self) -> None:
        self.run_once()
        self._thread = threading.Thread(target=self._loop, name="ingest-housekeeping", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


@dataclass
class Controller:
    """A built controller: its parts, and start/stop in the right order."""

    config: ControllerConfig
    clock: Clock
    engine: Engine
    catalog: Catalog
    store: ObjectStore
    ingest: IngestService
    server: grpc.Server
    grpc_port: int
    components: list[Component] = field(default_factory=list)

    def start(self) -> None:
        self.server.start()
        log.info("gRPC (mutual TLS) listening on port %d", self.grpc_port)
        for component in self.components:
            component.start()

    def stop(self, grace_s: float = 5.0) -> None:
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:
                log.exception("stopping %r failed", component)
        self.server.stop(grace_s).wait(grace_s + 1)
        self.engine.dispose()


def build_controller(
    config: ControllerConfig,
    clock: Clock,
    components: Sequence[Callable[[Controller], Component]] = (),
    grpc_registrations: Sequence[Registration] = (),
) -> Controller:
    """Build (not start) a controller. `components` are factories given the built controller
    (e.g. the fleet's MQTT service needs its catalog); `grpc_registrations` add services to the
    same mutual-TLS server (e.g. AgentControl)."""
    data = config.data_path
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"data_dir {data}: {exc.strerror}") from exc
    credentials = load_tls(config)
    try:
        engine = make_engine(config.resolved_database_url())
    except Exception as exc:
        raise StartupError(f"database {redact_url(config.resolved_database_url())}: {exc}") from exc
    try:
        store = open_store(config.resolved_storage_url())
    except ValueError as exc:
        raise StartupError(f"storage: {exc}") from exc
    catalog = Catalog(engine, clock)
    slots = UploadSlots(config.ingest.max_concurrent_uploads, clock, shares_from(config))
    service = IngestService(
        catalog, store, Staging(config.staging_dir()), limits_from(config), clock, slots
    )
    servicer = IngestServicer(service)
    registrations: list[Registration] = [
        lambda s: ingest_pb2_grpc.add_IngestServicer_to_server(servicer, s),
        *grpc_registrations,
    ]
    try:
        server, port = build_server(
            registrations,
            config.grpc.listen,
            credentials,
            config.grpc.max_workers,
            config.grpc.max_message_bytes,
        )
    except OSError as exc:
        engine.dispose()
        raise StartupError(str(exc)) from exc
    controller = Controller(config, clock, engine, catalog, store, service, server, port)
    controller.components.append(
        Housekeeper(service, config.ingest.idle_timeout_s, config.ingest.staging_ttl_s)
    )
    for factory in components:
        controller.components.append(factory(controller))
    return controller


def default_components(config: ControllerConfig) -> list[Callable[[Controller], Component]]:
    """Components every `vigil-controller serve` runs besides ingest.

    Each is a factory taking the built Controller (config.mqtt / config.http hold their
    settings); see controller/components.py.
    """
    from controller import components

    chosen: list[Callable[[Controller], Component]] = []
    if config.mqtt.mode != "off":
        chosen.append(components.fleet)
    if config.retention.sweep_interval_s > 0:
        chosen.append(components.retention)
    if config.http.enabled:
        chosen.append(components.http)  # after the fleet: the API reads its device view
    from controller.audit.publisher import audit_witness

    chosen.append(audit_witness)  # after the fleet: publishes checkpoints through it
    return chosen


def scheduler_components(
    config: ControllerConfig,
) -> tuple[Registration, Callable[[Controller], Component]]:
    """The AgentControl gRPC service and the scheduler component (after the fleet: it sends
    hold commands through it when present)."""
    from controller.scheduler.options import SchedulerOptions
    from controller.scheduler.wiring import fleet_of, scheduler_wiring

    s = config.scheduler
    options = SchedulerOptions(
        topology_path=s.topology_file,
        default_link_bps=s.default_link_bps,
        root_bps=s.root_bps,
        horizon_s=s.horizon_s,
        hysteresis=s.hysteresis,
        lease_grace_s=s.lease_grace_s,
        replan_interval_s=s.replan_interval_s,
    )
    register, factory = scheduler_wiring(options, fleet=fleet_of)
    return register, factory


def run(config: ControllerConfig, stop: threading.Event, clock: Clock | None = None) -> int:
    """Build, start, wait for `stop`, shut down. Returns the process exit code."""
    register, scheduler = scheduler_components(config)
    try:
        controller = build_controller(
            config, clock or SystemClock(), [*default_components(config), scheduler], [register]
        )
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    try:
        controller.start()
    except Exception:
        log.exception("start-up failed")
        controller.stop(0)
        return 1
    log.info("controller running: %s", config.describe())
    # Wake every second: a signal delivered to another thread only runs its Python
    # handler when the main thread next executes bytecode, not inside a bare wait().
    while not stop.wait(1.0):
        pass
    log.info("stopping")
    controller.stop()
    return 0


def main(config: ControllerConfig) -> int:
    """Run until SIGTERM or SIGINT (the process entry point of `serve`)."""
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d received", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return run(config, stop)


__all__ = [
    "Component",
    "Controller",
    "Housekeeper",
    "StartupError",
    "build_controller",
    "default_components",
    "limits_from",
    "load_tls",
    "main",
    "run",
]
