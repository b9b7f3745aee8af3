"""The one place a controller is put together: build every part in order, run until SIGTERM.

Nothing here decides anything. `build_controller` opens the core (database, object store),
then builds each part with exactly the parts it needs, in an order where every input exists
before it is given:

    core -> leadership(core) -> fleet(core, leadership) -> scheduler(core, options,
    commands=fleet, leadership) -> ingest(core, tls, services=[scheduler])
    -> retention(core, leadership) -> audit witness(core, publish=fleet)
    -> http(core, fleet, scheduler)

`leadership` says whether this replica leads the city (controller/leader): a `SoleLeader`
for a controller alone, or, with `[cluster] enabled`, an `Election` through the shared
database, started before every other part and stopped after them. The scheduler (plan,
lease streams, job upkeep) and the retention sweep ask it; `Controller.leadership` hands it
to anything else that must act on the leader only.

Parts are started in that order after the gRPC server, and stopped in reverse: the HTTP API
stops first (its last audit tallies are written), the audit witness then signs a last
checkpoint and publishes it through the still-running fleet, and the broker stops last.
Observability is built here too: one `CollectorRegistry` per controller (no global default
registry) carrying the process collector, the gRPC interceptor's families, the HTTP API's
counters and a collector that reads the fleet and scheduler at scrape time; the standard gRPC
health service answers SERVING once `start()` has started everything.

Only the entry point (`controller.serve_cli`) and tests import this module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import grpc
from prometheus_client import CollectorRegistry, ProcessCollector
from sqlalchemy.engine import Engine

from controller import components
from controller.api.component import HttpComponent
from controller.api.metrics import Metrics, StateCollector
from controller.api.readiness import Probe
from controller.api.wiring import http, load_policy
from controller.catalog import Catalog
from controller.clock import Clock, SystemClock
from controller.config import ControllerConfig
from controller.enrollment import wiring as enrollment_wiring
from controller.enrollment.wiring import Enrollment
from controller.fleet.component import FleetComponent
from controller.gb28181.component import GbComponent, gb28181
from controller.gb28181.devstore import replica_of as gb_replica_of
from controller.grants.shared_keys import share_keys
from controller.grpcserver.gc_tuning import tune_gc
from controller.grpcserver.observe import Health, MetricsInterceptor, RpcMetrics
from controller.grpcserver.server import AioServer, Registration
from controller.grpcserver.store_health import StoreHealth
from controller.ingest.service import IngestService
from controller.leader import Leadership, SoleLeader
from controller.leader import wiring as leader_wiring
from controller.leader.metrics import LeaderCollector
from controller.live.grpc_service import LiveServicer
from controller.live.hub import LiveHub
from controller.live.links import SchedulerLinks, live_options
from controller.live.metrics import LiveCollector
from controller.live.relay import Relay
from controller.live.relay_wiring import build as live_relay
from controller.runtime import Component, Core, StartupError, ensure_data_dir, open_core
from controller.scheduler.options import SchedulerOptions
from controller.scheduler.service import SchedulerService
from controller.scheduler.wiring import options_from, scheduler
from controller.storage import ObjectStore
from controller.storage.local import LocalObjectStore
from controller.storage.s3 import S3ObjectStore
from vigil_common.signals import stop_on_signals

log = logging.getLogger("vigil.controller")


@dataclass(frozen=True, slots=True)
class Parts:
    """Which parts run besides ingest. `serve` runs `Parts.from_config(config)`; tests pick.
    `scheduler` None: no AgentControl service (agents then upload nothing under leases)."""

    fleet: bool = False
    retention: bool = False
    witness: bool = False
    http: bool = False
    scheduler: SchedulerOptions | None = None

    @classmethod
    def from_config(cls, config: ControllerConfig) -> Parts:
        return cls(
            fleet=config.mqtt.mode != "off",
            retention=config.retention.sweep_interval_s > 0,
            witness=True,
            http=config.http.enabled,
            scheduler=options_from(config.scheduler),
        )


@dataclass
class Controller:
    """A built controller: its parts, and start/stop in the right order."""

    core: Core
    ingest: IngestService
    server: AioServer  # grpc.aio on its own event-loop thread (controller/grpcserver/server.py)
    grpc_port: int
    fleet: FleetComponent | None = None
    scheduler: SchedulerService | None = None
    http: HttpComponent | None = None
    leadership: Leadership = field(default_factory=SoleLeader)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    health: Health = field(default_factory=Health)
    live: LiveHub | None = None  # the live view's hub (controller/live)
    gb28181: GbComponent | None = None  # GB/T 28181 cascade to upper platforms
    relay: Relay | None = None  # live feeds other replicas hold ([cluster] enabled)
    enrollment: Enrollment | None = None  # revocation guard, Enroll listener (issue 16)
    # In start order: the leader election (if any) first, the HTTP API last.
    components: list[Component] = field(default_factory=list)

    @property
    def config(self) -> ControllerConfig:
        return self.core.config

    @property
    def clock(self) -> Clock:
        return self.core.clock

    @property
    def engine(self) -> Engine:
        return self.core.engine

    @property
    def catalog(self) -> Catalog:
        return self.core.catalog

    @property
    def store(self) -> ObjectStore:
        return self.core.store

    def start(self) -> None:
        self.server.start()
        log.info("gRPC (mutual TLS) listening on port %d", self.grpc_port)
        for component in self.components:
            component.start()
        self.health.serving()

    def stop(self, grace_s: float = 5.0) -> None:
        self.health.stopping()
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:
                log.exception("stopping %r failed", component)
        self.server.stop(grace_s)  # drains open calls, then ends the gRPC loop thread
        self.core.dispose()


def build_controller(
    config: ControllerConfig,
    clock: Clock,
    parts: Parts = Parts(),
    services: Sequence[Registration] = (),
) -> Controller:
    """Build (not start) a controller running ingest and `parts`; `services` join the same
    mutual-TLS gRPC server. StartupError says what stops it (the database is closed then)."""
    ensure_data_dir(config)
    credentials = components.load_tls(config)
    core = open_core(config, clock)
    try:
        share_keys(core)  # before any part loads a key: the same keys as every replica's
        return _build(core, credentials, parts, services)
    except BaseException:
        core.dispose()
        raise


def _build(
    core: Core, credentials: grpc.ServerCredentials, parts: Parts, services: Sequence[Registration]
) -> Controller:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    health = Health()
    leadership, election = leader_wiring.build(core)
    hub = LiveHub(core.clock.now_us, core.clock.monotonic, live_options(core.config.live))
    live = LiveServicer(hub, _device_of(core))
    relayed = live_relay(  # None: a controller alone
        core, hub, leadership, _device_of(core), partial(gb_replica_of, core.engine)
    )
    registry.register(LiveCollector(hub))
    enrollment = enrollment_wiring.build(core)  # its guard refuses revoked certificates first
    registry.register(LeaderCollector(leadership))
    fleet = components.fleet(core, leadership) if parts.fleet else None
    sched = (
        scheduler(core, parts.scheduler, fleet.service if fleet else None, leadership)
        if parts.scheduler is not None
        else None
    )
    ingest = components.ingest(
        core,
        credentials,
        [
            health.register,
            live.register,
            *([relayed.servicer.register] if relayed else []),
            *services,
            *([sched.register] if sched else []),
        ],
        [enrollment.guard, MetricsInterceptor(RpcMetrics(registry))],
    )
    controller = Controller(
        core, ingest.service, ingest.server, ingest.port, fleet, registry=registry, health=health
    )
    registry.register(  # this replica's own scheduler state: summed over replicas, once
        StateCollector(
            fleet.service if fleet else None, sched.service.local_snapshot if sched else None
        )
    )
    controller.leadership = leadership
    controller.live = live.hub
    controller.enrollment = enrollment
    try:
        enrollment_wiring.listen(enrollment, core)
    except BaseException:
        ingest.server.stop(0)
        raise
    controller.components.extend(enrollment.components())
    if election is not None:
        controller.components.append(election)
    controller.components.append(ingest.housekeeping)
    # Announces store health to the agents (gRPC health of vigil.v1.Ingest): they resume
    # uploads the moment the store answers again (issue 19).
    answers = core.store.answers if isinstance(core.store, S3ObjectStore) else None
    controller.components.append(
        StoreHealth(
            health,
            readiness_probes(core, None)["store"],
            recent=answers.recent if answers is not None else None,
        )
    )
    if fleet is not None:
        controller.components.append(fleet)
    if parts.retention:
        controller.components.append(components.retention(core, leadership))
    if parts.witness:
        publish = fleet.publish_retained if fleet is not None else None
        witness = components.audit_witness(core, publish)
        if witness is not None:
            controller.components.append(witness)
    if sched is not None:
        hub.links = SchedulerLinks(sched.service)  # live feeds planned, links not oversubscribed
        controller.scheduler = sched.service
        controller.components.append(sched.service)
    if relayed is not None:  # viewers here of feeds another replica holds
        registry.register(relayed.collector())
        controller.relay = relayed.relay
        controller.components.append(relayed.relay)
    # None unless [gb28181] enabled; upper platforms see what the tier policy lets their org see
    unsent = sched.service.unsent if sched is not None else None  # RecordInfo: agents' footage
    poke = sched.service.poke if sched is not None else None  # an INVITE filed a request
    policy = load_policy(core.config.policy_file)
    controller.gb28181 = gb28181(core, live.hub, policy, unsent, poke)
    if controller.gb28181 is not None:
        controller.components.append(controller.gb28181)
    if parts.http:
        controller.http = http(
            core,
            fleet.service if fleet else None,
            controller.scheduler,
            Metrics(registry),
            readiness_probes(core, fleet),
            live=live.hub,
        )
        controller.components.append(controller.http)
    return controller


def _device_of(core: Core) -> Callable[[str], str | None]:
    """The device a camera belongs to in the catalog (a device may feed only its own)."""

    def device_of(camera_id: str) -> str | None:
        row = core.catalog.camera(camera_id)
        return row.device_id if row is not None else None

    return device_of


def readiness_probes(core: Core, fleet: FleetComponent | None) -> dict[str, Probe]:
    """What /readyz asks: the catalog answers a query, the store answers a lookup (a local
    store's directory exists), the broker is connected (only when the fleet runs)."""

    def catalog() -> str | None:
        core.catalog.count_segments("readyz-probe")
        return None

    def store() -> str | None:
        if isinstance(core.store, LocalObjectStore):
            root = core.store.root  # made at the first write: missing is fine, a file is not
            if not (root.is_dir() or (not root.exists() and root.parent.is_dir())):
                return f"storage directory {root} is not a usable directory"
        core.store.head("readyz-probe")
        return None

    probes: dict[str, Probe] = {"catalog": catalog, "store": store}
    if fleet is not None:
        service = fleet.service

        def broker() -> str | None:
            return None if service.wait_connected(0) else "not connected to the MQTT broker"

        probes["broker"] = broker
    return probes


def run(config: ControllerConfig, stop: threading.Event, clock: Clock | None = None) -> int:
    """Build, start, wait for `stop`, shut down. Returns the process exit code."""
    try:
        controller = build_controller(config, clock or SystemClock(), Parts.from_config(config))
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
    stop = stop_on_signals(log)
    tune_gc()  # a process setting: thousands of connections make a large, long-lived heap
    return run(config, stop)


__all__ = ["Controller", "Parts", "build_controller", "main", "run"]
