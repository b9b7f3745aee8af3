"""Builders of the parts every `vigil-controller serve` may run besides the HTTP API and the
scheduler (those build in `controller.api.wiring` and `controller.scheduler.wiring`).

Each builder takes the `Core` and exactly the other parts it needs, and returns objects with
start()/stop(); none starts anything or looks for another part. `controller.assembly` calls
them in order. `load_tls` is also what `serve --check-config` runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from controller.audit.log import AuditLog
from controller.audit.publisher import CheckpointWitness, Publish
from controller.catalog import Catalog
from controller.catalog.history import HistoryCatalog
from controller.clock import Clock
from controller.config import ControllerConfig
from controller.fleet.alerts import AlertRules
from controller.fleet.broker import CONTROLLER_USER
from controller.fleet.component import FleetComponent
from controller.fleet.directory import CachedDirectory
from controller.fleet.history_writer import HistoryWriter
from controller.fleet.service import FleetOptions
from controller.fleet.shared import CatalogDeviceSource, SharedFleetState
from controller.grants.keys import KeyFileError, load_keys
from controller.grpcserver.identity import mtls_credentials
from controller.grpcserver.server import AioServer, Registration, build_server
from controller.ingest.fairness import Shares
from controller.ingest.grpc_service import IngestServicer, add_ingest_to_server
from controller.ingest.ledger import Ledger
from controller.ingest.rules import Limits
from controller.ingest.service import IngestService
from controller.ingest.slots import UploadSlots
from controller.ingest.staging import Staging
from controller.ingest.stream import StreamReceiver
from controller.leader import Leadership, SoleLeader
from controller.leader.gate import LeaderOnly
from controller.pki.certs import PkiError, load_cert, load_key
from controller.retention import sweep_retention
from controller.retention.uploads import sweep_uploads
from controller.runtime import Core, PeriodicTask, StartupError
from controller.storage import ObjectStore
from controller.storage.base import StreamingStore

log = logging.getLogger("vigil.controller")
retention_log = logging.getLogger("vigil.controller.retention")

HOUSEKEEPING_INTERVAL_S = 10.0
QUEUE_INTERVAL_S = 2.0  # the commit queue drains at this pace once the store is back


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


@dataclass(frozen=True, slots=True)
class Ingest:
    """The mutual-TLS gRPC server (bound, not started) with ingest and any other services,
    and the housekeeping that cancels idle streams and removes stale staging."""

    service: IngestService
    server: AioServer
    port: int
    housekeeping: PeriodicTask


def housekeeping(service: IngestService, idle_timeout_s: float, staging_ttl_s: float) -> None:
    """One housekeeping run: cancel upload streams idle too long, remove stale staging."""
    reaped = service.slots.reap_idle(idle_timeout_s)
    if reaped:
        log.warning("cancelled %d upload stream(s) idle for over %.0f s", reaped, idle_timeout_s)
    removed = service.recover(staging_ttl_s)
    if removed:
        log.info("removed %d stale staged upload(s)", removed)


class Housekeeping:
    """Every QUEUE_INTERVAL_S: commit what the commit queue holds (the store is back); every
    HOUSEKEEPING_INTERVAL_S (and at start): `housekeeping`."""

    def __init__(self, service: IngestService, idle_timeout_s: float, staging_ttl_s: float) -> None:
        self._service = service
        self._idle = idle_timeout_s
        self._ttl = staging_ttl_s
        self._runs = 0
        self._every = max(1, round(HOUSEKEEPING_INTERVAL_S / QUEUE_INTERVAL_S))

    def __call__(self) -> None:
        if self._runs % self._every == 0:
            housekeeping(self._service, self._idle, self._ttl)
        self._runs += 1
        self._service.drain_queue()


def streaming(core: Core) -> StreamReceiver | None:
    """Ingest straight into the store when it can take bytes as they arrive (S3)."""
    store = core.store
    if not isinstance(store, StreamingStore):
        return None
    return StreamReceiver(store, Ledger(core.catalog.engine), core.clock, limits_from(core.config))


def ingest(
    core: Core,
    credentials: grpc.ServerCredentials,
    services: Sequence[Registration] = (),
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> Ingest:
    """Ingest on `grpc.listen`; `services` join the same server (e.g. AgentControl)."""
    config = core.config
    slots = UploadSlots(config.ingest.max_concurrent_uploads, core.clock, shares_from(config))
    service = IngestService(
        core.catalog,
        core.store,
        Staging(config.staging_dir()),
        limits_from(config),
        core.clock,
        slots,
        streaming=streaming(core),
    )
    servicer = IngestServicer(service)
    registrations: list[Registration] = [
        lambda s: add_ingest_to_server(servicer, s),
        *services,
    ]
    try:
        server, port = build_server(
            registrations,
            config.grpc.listen,
            credentials,
            config.grpc.max_workers,
            config.grpc.max_message_bytes,
            interceptors,
        )
    except OSError as exc:
        raise StartupError(str(exc)) from exc
    idle, ttl = config.ingest.idle_timeout_s, config.ingest.staging_ttl_s
    task = PeriodicTask(
        "ingest-housekeeping",
        QUEUE_INTERVAL_S,
        Housekeeping(service, idle, ttl),
        run_at_start=True,
    )
    return Ingest(service, server, port, task)


def fleet(core: Core, leadership: Leadership | None = None) -> FleetComponent:
    """MQTT fleet health and commands (a managed Mosquitto when no broker is configured).
    The device registry is held in memory (refreshed on change); with `mqtt.shared`, the
    fleet view is shared with the other replicas through the catalog's database."""
    config = core.config
    rules = config.fleet
    account = config.mqtt.username or config.mqtt.client_id  # = the client id on the broker
    if config.cluster.enabled and account == CONTROLLER_USER:
        raise StartupError(
            "cluster.enabled: set [mqtt] client_id to this replica's own account, e.g. "
            f"'{CONTROLLER_USER}-a' (docs/deployment.md, 'Several controller replicas on one "
            "broker'); replicas sharing one client id knock each other off the broker"
        )
    engine = core.catalog.engine
    # Replicas (cluster) always share the health stream and the fleet view.
    shared_view = config.mqtt.shared or config.cluster.enabled
    shared = SharedFleetState(engine, account) if shared_view else None
    try:
        return FleetComponent(
            config.mqtt,
            config.data_path,
            core.clock,
            CachedDirectory(CatalogDeviceSource(engine), core.clock.monotonic),
            FleetOptions(
                rules=AlertRules(
                    clock_skew_s=rules.clock_skew_s,
                    startup_grace_s=rules.startup_grace_s,
                    frame_age_s=rules.frame_age_s,
                )
            ),
            leadership=leadership or SoleLeader(),
            shared=shared,
            history=HistoryWriter(HistoryCatalog(engine, core.clock)),
        )
    except OSError as exc:
        raise StartupError(f"mqtt.password_file: {exc}") from exc


class RetentionSweep:
    """One cloud retention sweep, logged. The sweep itself never raises for store or database
    trouble (it reports it), so one bad run only delays deletions to the next; a crash
    mid-sweep is finished by the next run."""

    def __init__(
        self, catalog: Catalog, store: ObjectStore, clock: Clock, upload_ttl_s: float = 7 * 86400.0
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._clock = clock
        self._ledger = Ledger(catalog.engine)
        self._upload_ttl_s = upload_ttl_s

    def __call__(self) -> None:
        report = sweep_retention(self._catalog, self._store, self._clock)
        if report.deleted or report.errors:
            retention_log.info(
                "retention sweep: deleted %d segment(s), %d bytes; %d error(s)%s",
                len(report.deleted),
                report.deleted_bytes,
                len(report.errors),
                f": {report.errors[0]}" if report.errors else "",
            )
        sweep_uploads(self._store, self._ledger, self._clock.now_us(), self._upload_ttl_s)


def retention(core: Core, leadership: Leadership | None = None) -> PeriodicTask:
    """The periodic cloud retention sweep (per-camera policy, holds respected), run by the
    city's leader only (`leadership`; default: a controller alone, which always leads)."""
    sweep = RetentionSweep(core.catalog, core.store, core.clock, core.config.ingest.staging_ttl_s)
    return PeriodicTask(
        "retention-sweep",
        core.config.retention.sweep_interval_s,
        LeaderOnly("retention sweep", sweep, leadership or SoleLeader()),
        join_timeout_s=30.0,
    )


def audit_witness(core: Core, publish: Publish | None) -> CheckpointWitness | None:
    """The audit checkpoint witness, publishing through `publish` (the fleet's MQTT
    connection; None: checkpoints are still signed, and exports still carry them). None
    without an evidence key: nothing can be signed."""
    try:
        keys = load_keys(core.config.data_path)
    except KeyFileError as exc:
        log.warning("audit witness off: %s", exc)
        return None
    audit = AuditLog(core.engine, core.clock, keys.evidence)
    return CheckpointWitness(audit, publish, core.config.audit.checkpoint_interval_s)


__all__ = [
    "audit_witness",
    "Ingest",
    "RetentionSweep",
    "fleet",
    "housekeeping",
    "ingest",
    "limits_from",
    "load_tls",
    "retention",
    "shares_from",
]
