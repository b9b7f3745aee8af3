"""Building the HTTP component from a built `Controller` (what `default_components` calls).

    from controller.api.wiring import http_component
    ...                                     # after the fleet factory, if any:
    return [components.fleet, http_component]

The fleet view is found among the components built before it (a `FleetComponent`, whose
service exists only once started: `ComponentFleet` reads it lazily); without one the API
lists devices from the catalog and answers /alerts with 503. Footage requests always run
(JobService on the catalog's database); the scheduler is found among the components at
request time (`find_scheduler`), the scheduler views answering 503 without one.

The sharing keys must exist in `<data_dir>/keys` (`vigil-controller keys --data-dir D`): they
are never created here, because replicas sharing a database must share the same keys, and a
replica inventing its own root key would silently split the city in two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.api.app import create_app
from controller.api.component import HttpComponent
from controller.api.deps import ApiDeps, ApiSettings, FleetView, SchedulerView, settings_from_config
from controller.audit.log import AuditLog
from controller.exports.service import ExportService
from controller.fleet.alerts import Alert
from controller.fleet.component import FleetComponent
from controller.fleet.history import HealthPoint
from controller.fleet.monitor import DeviceRecord
from controller.grants.keys import KeyFileError, load_keys
from controller.grants.policy import Policy, default_policy
from controller.grants.service import GrantService
from controller.jobs import JobService
from controller.media.renditions import rendition_cache
from controller.playback.service import PlaybackService
from controller.users.sessions import derive_session_key
from controller.users.store import UserStore

if TYPE_CHECKING:
    from controller.app import Controller


class ComponentFleet:
    """A FleetView over a FleetComponent: its FleetService is created in start(), after the
    API is built, so every query looks it up (empty answers until the fleet runs)."""

    def __init__(self, component: FleetComponent) -> None:
        self._component = component

    def devices(self) -> list[DeviceRecord]:
        service = self._component.service
        return service.devices() if service else []

    def device(self, device_id: str) -> DeviceRecord | None:
        service = self._component.service
        return service.device(device_id) if service else None

    def alerts(self, device_id: str | None = None) -> list[Alert]:
        service = self._component.service
        return service.alerts(device_id) if service else []

    def history(self, device_id: str) -> list[HealthPoint]:
        service = self._component.service
        return service.history(device_id) if service else []


def find_fleet(controller: Controller) -> FleetView | None:
    for component in controller.components:
        if isinstance(component, FleetComponent):
            return ComponentFleet(component)
    return None


def find_scheduler(controller: Controller) -> SchedulerView | None:
    """The controller's SchedulerService, looked up when asked: `run()` appends the
    scheduler component after the HTTP one, so it is not there when the API is built."""
    from controller.scheduler.service import SchedulerService

    for component in controller.components:
        if isinstance(component, SchedulerService):
            return component
    return None


def api_deps(
    controller: Controller,
    *,
    fleet: FleetView | None = None,
    policy: Policy | None = None,
    settings: ApiSettings | None = None,
) -> ApiDeps:
    """The services the API needs, on the controller's engine, store and clock."""
    from controller.app import StartupError

    config = controller.config
    try:
        keys = load_keys(config.data_path)
    except KeyFileError as exc:
        raise StartupError(f"HTTP API: {exc}") from exc
    audit = AuditLog(controller.engine, controller.clock, keys.evidence)
    grants = GrantService(
        controller.engine, controller.clock, keys, policy or default_policy(), audit
    )
    return ApiDeps(
        catalog=controller.catalog,
        store=controller.store,
        clock=controller.clock,
        grants=grants,
        playback=PlaybackService(
            grants,
            renditions=rendition_cache(
                config.transcode.enabled,
                config.renditions_dir(),
                config.transcode.cache_bytes,
                config.transcode.max_concurrent,
                config.transcode.wait_s,
                config.transcode.preset,
            ),
        ),
        exports=ExportService(grants, media=controller.catalog.segment_media),
        audit=audit,
        users=UserStore(controller.engine, controller.clock),
        session_key=derive_session_key(keys.url_hmac),
        export_dir=config.data_path / "exports-outgoing",
        fleet=fleet,
        settings=settings or settings_from_config(config.http),
        jobs=JobService(controller.catalog, controller.clock),
        scheduler_lookup=lambda: find_scheduler(controller),
    )


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def http_component(controller: Controller, fleet: FleetView | None = None) -> HttpComponent:
    """The HTTP API on `config.http.listen`, flushing the segment-fetch audit every minute.
    `fleet` defaults to the FleetComponent already among the controller's components."""
    deps = api_deps(controller, fleet=fleet or find_fleet(controller))
    host, port = split_listen(controller.config.http.listen)
    cert, key = controller.config.http_tls_paths()
    return HttpComponent(
        create_app(deps),
        host,
        port,
        periodic=[deps.playback.flush],
        period_s=deps.settings.flush_interval_s,
        tls=(str(cert), str(key)) if controller.config.http.tls else None,
    )
