"""Connect the optional parts of a running agent: the uplink and the MQTT health reporter.

`Agent` owns capture and the buffer; this module decides, from the configuration alone, which
other components a device runs (no `uplink.controller(s)` or an empty `mqtt.host` switches
that part off) and connects their inputs and events. Kept apart from `__main__` so tests and
the demo build exactly the agent an NVR runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from edge_agent.app import Agent
from edge_agent.clock import Clock, ClockOffset
from edge_agent.config import AgentConfig
from edge_agent.uplink.failover import RouteStatus
from edge_agent.uplink.routing import FailoverIngestClient, RouteKeeper

log = logging.getLogger("edge_agent.wiring")


def agent_version() -> str:
    try:
        return version("vigil")
    except PackageNotFoundError:
        return "0+unknown"


class RateMeter:
    """Upload rate in bit/s between two reads of a monotonically growing byte counter."""

    def __init__(self, read_bytes: Callable[[], int], clock: Clock) -> None:
        self._read = read_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._last = (clock.monotonic(), read_bytes())

    def __call__(self) -> int:
        with self._lock:
            now, total = self._clock.monotonic(), self._read()
            then, before = self._last
            self._last = (now, total)
        elapsed = now - then
        return int((total - before) * 8 / elapsed) if elapsed > 0 else 0


def read_password(path: str) -> str:
    """The MQTT password from its file (first line); a missing file is a clear error."""
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError) as exc:
        raise ValueError(f"mqtt.password_file {path}: cannot read a password: {exc}") from exc


def route_status(sender: object, control: RouteKeeper | None) -> Callable[[], RouteStatus] | None:
    """Where the uplink is connected, for health: the upload route of `sender` (when it is a
    FailoverIngestClient) and the control route (leased mode)."""
    upload = sender.route if isinstance(sender, FailoverIngestClient) else None
    if upload is None:
        return None

    def status() -> RouteStatus:
        up = upload.snapshot()
        ctl = control.snapshot() if control is not None else None
        return RouteStatus(
            control_address=ctl.address if ctl is not None else "",
            upload_address=up.address,
            failovers=up.failovers + (ctl.failovers if ctl is not None else 0),
        )

    return status


def wire_components(agent: Agent, config: AgentConfig, clock: Clock) -> None:
    """Add the uplink and the health reporter the configuration asks for."""
    upload_rate: Callable[[], int] | None = None
    routes: Callable[[], RouteStatus] | None = None
    addresses = ", ".join(config.uplink.addresses)
    # The agent's clock against the controller's, from inventory answers: reported in health,
    # and segments committed while it is off by more than the threshold are flagged.
    offset = ClockOffset(clock)
    agent.buffer.set_clock_check(offset.skewed)
    if config.uplink.addresses and config.uplink.mode == "leased":
        from edge_agent.leases import LeaseClientOptions, leased_uplink

        leased, leases = leased_uplink(
            config.device_id,
            config.uplink,
            agent.buffer,
            clock,
            agent.publish,
            cameras=[c.id for c in config.cameras],
            archive_cameras=[c.id for c in config.cameras if c.archive],
            options=LeaseClientOptions(inventory_interval_s=config.uplink.inventory_interval_s),
            clock_offset=offset,
        )
        agent.add_component(leased)
        agent.add_component(leases)
        from edge_agent.live import LiveClient

        control = leases.control
        live = LiveClient(agent.live, control.route.current, control.channel, clock)
        control.route.add_listener(live.route_moved)
        agent.add_component(live)
        upload_rate = RateMeter(lambda: leased.stats().bytes_sent, clock)
        routes = route_status(leased.sender, leases.control.route)
        log.info("leased uplink to %s enabled", addresses)
    elif config.uplink.addresses:
        from edge_agent.uplink import Uploader, open_client

        client = open_client(config.uplink, clock)
        uploader = Uploader(
            agent.buffer,
            client,
            clock,
            on_event=agent.publish,
            concurrency=config.uplink.concurrency,
        )
        agent.add_component(uploader)
        upload_rate = RateMeter(lambda: uploader.stats().bytes_sent, clock)
        routes = route_status(client, None)
        log.info("uplink to %s enabled", addresses)
    if config.mqtt.host:
        from edge_agent.health.inputs import ReporterInputs, psutil_probe
        from edge_agent.health.reporter import HealthReporter

        inputs = ReporterInputs(
            statuses=agent.statuses,
            buffer=agent.buffer,
            holds=agent.buffer,
            on_reconfigure=agent.reconfigure,
            upload_rate_bps=upload_rate,
            system=psutil_probe(config.data_dir),
            clock_skew=offset.estimate,
            uplink_routes=routes,
        )
        reporter = HealthReporter(
            config,
            clock,
            inputs,
            agent_version=agent_version(),
            password=read_password(config.mqtt.password_file),
        )
        agent.add_component(reporter)
        agent.subscribe(reporter.submit_event)
        log.info("health reporting to %s:%d enabled", config.mqtt.host, config.mqtt.port)
