"""Building the HTTP API from the core and the parts it reads: `http(core, fleet, scheduler)`.

`fleet` is the fleet's view (its FleetService) or None, when no MQTT fleet runs: the API then
lists devices from the catalog and answers /alerts with 503. `scheduler` is the scheduler
service or None: its views answer 503. Footage requests always run (JobService on the
catalog's database).

The sharing keys must exist in `<data_dir>/keys` (`vigil-controller keys --data-dir D`): they
are never created here, because replicas sharing a database must share the same keys, and a
replica inventing its own root key would silently split the city in two.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from controller.api.app import create_app
from controller.api.component import HttpComponent
from controller.api.deps import ApiDeps, ApiSettings, FleetView, SchedulerView, settings_from_config
from controller.api.gb_devices import GbFleet
from controller.api.metrics import Metrics
from controller.api.readiness import Readiness
from controller.audit.log import AuditLog
from controller.enrollment.operations import Operations
from controller.exports.service import ExportService
from controller.gb28181.devstore import GbDeviceStore
from controller.grants.keys import KeyFileError, load_keys
from controller.grants.policy import Policy, default_policy, policy_from_mapping
from controller.grants.service import GrantService
from controller.jobs import JobService
from controller.live.hub import LiveHub
from controller.media.renditions import rendition_cache
from controller.playback.service import PlaybackService
from controller.runtime import Core, StartupError
from controller.users.sessions import derive_session_key
from controller.users.store import UserStore


def api_deps(
    core: Core,
    fleet: FleetView | None,
    scheduler: SchedulerView | None,
    *,
    policy: Policy | None = None,
    settings: ApiSettings | None = None,
) -> ApiDeps:
    """The services the API needs, on the core's engine, store and clock."""
    config = core.config
    try:
        keys = load_keys(config.data_path)
    except KeyFileError as exc:
        raise StartupError(f"HTTP API: {exc}") from exc
    audit = AuditLog(core.engine, core.clock, keys.evidence)
    if policy is None:
        policy = load_policy(config.policy_file)
    grants = GrantService(core.engine, core.clock, keys, policy, audit)
    t = config.transcode
    renditions = rendition_cache(
        t.enabled, config.renditions_dir(), t.cache_bytes, t.max_concurrent, t.wait_s, t.preset
    )
    return ApiDeps(
        catalog=core.catalog,
        store=core.store,
        clock=core.clock,
        grants=grants,
        playback=PlaybackService(grants, renditions=renditions),
        exports=ExportService(grants, media=core.catalog.segment_media),
        audit=audit,
        users=UserStore(core.engine, core.clock),
        session_key=derive_session_key(keys.url_hmac),
        export_dir=config.data_path / "exports-outgoing",
        fleet=fleet,
        settings=settings or settings_from_config(config.http),
        jobs=JobService(core.catalog, core.clock),
        scheduler=scheduler,
        enrollment=Operations.for_config(config, core.catalog, core.clock),
        kpi_targets=config.kpi.targets(),
        gb=gb_fleet(core),
    )


def gb_fleet(core: Core) -> GbFleet | None:
    """GB/T 28181 devices' state for the fleet view, when this city takes devices in."""
    gb = core.config.gb28181
    if not (gb.enabled and gb.server_id):
        return None
    return GbFleet(GbDeviceStore(core.engine, core.clock), core.clock, gb.device_timeout_s)


def load_policy(path: str) -> Policy:
    """The tier policy from `path` (TOML, or JSON by its suffix); the built-in one for "".
    A broken file stops the start: guessing who may see what is not an option."""
    if not path:
        return default_policy()
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if path.endswith(".json") else tomllib.loads(text)
        return policy_from_mapping(data)
    except (OSError, ValueError) as exc:  # PolicyError, TOMLDecodeError, JSONDecodeError
        raise StartupError(f"policy_file {path}: {exc}") from exc


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def http(
    core: Core,
    fleet: FleetView | None,
    scheduler: SchedulerView | None,
    metrics: Metrics | None = None,
    readiness: Readiness | None = None,
    live: LiveHub | None = None,
) -> HttpComponent:
    """The HTTP API on `config.http.listen`, flushing the segment-fetch audit every minute;
    `metrics` on the assembly's registry, `readiness` what /readyz checks, `live` the live
    view's hub (None: the live WebSocket refuses every viewer)."""
    deps = api_deps(core, fleet, scheduler)
    if metrics is not None:
        deps.metrics = metrics
    deps.readiness = readiness
    host, port = split_listen(core.config.http.listen)
    cert, key = core.config.http_tls_paths()
    app = create_app(deps)
    app.state.live = live
    return HttpComponent(
        app,
        host,
        port,
        periodic=[deps.playback.flush],
        period_s=deps.settings.flush_interval_s,
        tls=(str(cert), str(key)) if core.config.http.tls else None,
    )
