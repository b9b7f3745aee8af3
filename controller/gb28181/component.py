"""The GB/T 28181 cascade as a controller part: its own event loop thread, built from the core.

`gb28181(core, hub)` builds (binds nothing); `start()` binds the SIP port and starts one
registration loop per upper platform; `stop()` ends every stream (BYE), un-REGISTERs and
joins the thread. The backend reads the catalog and the object store and writes the audit log;
scope is the grants policy's entitlement of the platform's organisation (controller/grants),
narrowed to its configured areas, so an upper platform sees exactly what that organisation
would be entitled to see in the console.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from controller.audit.chain import AuditEvent
from controller.audit.log import AuditLog
from controller.catalog.catalog import MAX_RANGE_LIMIT
from controller.config import Gb28181Config, UpperPlatformConfig
from controller.directory.scope import Term
from controller.directory.store import MAX_PAGE, DirectoryStore, Filters, Listed
from controller.gb28181 import supervise
from controller.gb28181.cascade import RegisterPlan, merge_ranges
from controller.gb28181.catalog_sub import CatalogSubscriber
from controller.gb28181.channel_sessions import RecordingSupervisor
from controller.gb28181.codes import Place
from controller.gb28181.devices import DeviceAccess
from controller.gb28181.devstore import GbDeviceStore, judged_channels
from controller.gb28181.fetch import FootageFetcher
from controller.gb28181.footage import Filed
from controller.gb28181.livebridge import LiveBridge
from controller.gb28181.recstore import CoreRecordingBackend
from controller.gb28181.service import GbService
from controller.gb28181.transport import SipTransport
from controller.gb28181.upper import UpperLink, run_link, unregister
from controller.grants.keys import KeyFileError, load_keys
from controller.grants.model import area_within
from controller.grants.policy import Policy, camera_info, default_policy, entitled
from controller.jobs import JobService
from controller.live.hub import LiveHub
from controller.runtime import Core, StartupError

log = logging.getLogger("vigil.gb28181")
# A device INVITEd for recording may take this long to send its first packet (it waits for
# its next keyframe; NVRs wake a sleeping channel's encoder).
FIRST_PACKET_S = 10.0
Unsent = Callable[[str, str], Sequence[tuple[int, int]]]  # (device, camera) -> spans


class CoreBackend:
    """The catalog, store, policy and audit log behind the endpoint (blocking calls)."""

    def __init__(
        self,
        core: Core,
        policy: Policy,
        audit: AuditLog | None,
        unsent: Unsent | None = None,
        poke: Callable[[], None] | None = None,
    ) -> None:
        self.core = core
        self.policy = policy
        self._audit = audit
        self._unsent = unsent
        jobs = JobService(core.catalog, core.clock)
        self.fetcher = FootageFetcher(jobs, core.clock.now_us, self._append, poke)

    def places(self) -> list[Place]:
        """Every camera with its directory facts (name, township/village, GB code)."""
        store = DirectoryStore(self.core.engine, self.core.clock)
        rows: list[Listed] = []
        while True:
            page, total = store.page([Term()], Filters(), len(rows), MAX_PAGE)
            rows += page
            if not page or len(rows) >= total:
                break
        return [
            Place(
                r.camera_id,
                r.device_id,
                r.county,
                r.village or r.township or r.site,
                r.name,
                r.gb_code or "",
                r.resource_class,
                r.site,
            )  # fmt: skip
            for r in rows
        ]

    def visible(self, org: str, areas: Sequence[str], places: Sequence[Place]) -> frozenset[str]:
        out = set()
        for p in places:
            info = camera_info(
                self.policy, p.camera_id, p.county, p.registry_site, p.resource_class
            )
            if not entitled(self.policy, org, info):
                continue
            if areas and not any(area_within(info.area, a) for a in areas):
                continue
            out.add(p.camera_id)
        return frozenset(out)

    def segments(self, camera_id: str, start_us: int, end_us: int) -> list[tuple[str, int]]:
        rows = self.core.catalog.segments_in_range(camera_id, start_us, end_us, MAX_RANGE_LIMIT)
        return [(r.object_key, r.start_us) for r in rows]

    def ranges(self, camera_id: str, start_us: int, end_us: int) -> list[tuple[int, int]]:
        rows = self.core.catalog.segments_in_range(camera_id, start_us, end_us, MAX_RANGE_LIMIT)
        return merge_ranges([(r.start_us, r.end_us) for r in rows])

    def on_device(self, camera_id: str, start_us: int, end_us: int) -> list[tuple[int, int]]:
        """The camera's footage still only on its agent, within [start_us, end_us): the
        unsent segments of its agent's last inventory (the scheduler leader's view)."""
        if self._unsent is None:
            return []
        row = self.core.catalog.camera(camera_id)
        if row is None:
            return []
        spans = self._unsent(row.device_id, camera_id)
        return merge_ranges([(a, b) for a, b in spans if a < end_us and b > start_us])

    def request_footage(self, link: UpperLink, camera_id: str, start_us: int, end_us: int) -> Filed:
        """The footage request fetching this on-agent range (filed once; `fetch.py`)."""
        return self.fetcher.request(link.cfg.server_id, link.cfg.org, camera_id, start_us, end_us)

    def read(self, key: str) -> bytes:
        return self.core.store.read_bytes(key)

    def offline_channels(self) -> frozenset[str]:
        """GB device channels an upper platform is told are OFF: their device is not online
        (or never registered), or its last Catalog answer reported them OFF. Read from the
        rows, as every replica's fleet view does (`devstate.judge_channel`)."""
        if not self.core.config.gb28181.server_id:
            return frozenset()  # no device access: every camera is an agent's
        store = GbDeviceStore(self.core.engine, self.core.clock)
        states = judged_channels(store.rows(), store.all_channels(), self.core.clock.now_us(),
                                 self.core.config.gb28181.device_timeout_s)  # fmt: skip
        return frozenset(cam for cam, s in states.items() if not s.online)

    def audit(
        self,
        action: str,
        link: UpperLink,
        camera_id: str,
        outcome: str,
        reason: str,
        detail: dict[str, Any],
    ) -> None:
        self._append(
            action, link.cfg.server_id, link.cfg.org, camera_id, "", detail, outcome, reason
        )

    def _append(
        self,
        action: str,
        server_id: str,
        org: str,
        camera_id: str,
        case_id: str,
        detail: dict[str, Any],
        outcome: str = "ok",
        reason: str = "",
    ) -> None:
        if self._audit is None:
            return
        event = AuditEvent(
            action=action,
            actor_user=f"gb28181:{server_id}",
            actor_org=org,
            camera_id=camera_id,
            case_id=case_id,
            outcome=outcome,
            reason=reason[:200],
            detail=detail,
        )
        try:
            self._audit.append(event)
        except Exception:
            log.exception("cannot audit %s of %s", action, camera_id)


def read_password(path: str, server_id: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StartupError(f"gb28181 upper {server_id}: cannot read password_file: {exc}") from exc
    if not text:
        raise StartupError(f"gb28181 upper {server_id}: password_file {path} is empty")
    return text


def resolve_peer(cfg: UpperPlatformConfig) -> tuple[str, int]:
    host, _, port = cfg.address.rpartition(":")
    try:
        addr = socket.getaddrinfo(host.strip("[]"), int(port), socket.AF_INET)[0][4][0]
    except OSError as exc:
        raise StartupError(f"gb28181 upper {cfg.server_id}: cannot resolve {host}: {exc}") from exc
    return str(addr), int(port)


def local_host(listen_host: str, media_ip: str, peer: tuple[str, int]) -> str:
    """The address written in Via/Contact/SDP: media_ip, a specific listen host, or the
    host's own address toward the (first) upper platform."""
    if media_ip:
        return media_ip
    if listen_host not in ("", "0.0.0.0"):  # noqa: S104 - comparing, not binding
        return listen_host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(peer)
        return str(s.getsockname()[0])


class GbComponent:
    def __init__(self, config: Gb28181Config, backend: CoreBackend, hub: LiveHub | None) -> None:
        self.config = config
        self.backend = backend
        self.hub = hub
        self.links = [
            UpperLink(
                cfg,
                read_password(cfg.password_file, cfg.server_id),
                resolve_peer(cfg),
                RegisterPlan(cfg.register_expiry_s, cfg.keepalive_s, cfg.keepalive_misses),
            )
            for cfg in config.upper
        ]
        self.service: GbService | None = None
        self.devices: DeviceAccess | None = None
        self.recording: RecordingSupervisor | None = None
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gb28181", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            raise StartupError(f"gb28181: cannot start: {self._error!r}")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start(); never kills the controller
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        host, _, port = self.config.listen.rpartition(":")
        peer = self.links[0].peer if self.links else ("127.0.0.1", 5060)
        advertised = local_host(host, self.config.media_ip, peer)
        service: GbService | None = None

        async def on_request(inbound: Any) -> None:
            assert service is not None
            await service.on_request(inbound)

        transport = SipTransport(on_request)
        tcp = bool(self.config.server_id) and self.config.device_tcp  # devices over TCP
        local = await transport.listen(host, int(port), tcp)
        self.port = local[1]
        catalog = self.backend.core.catalog

        def device_of(camera_id: str) -> str | None:
            row = catalog.camera(camera_id)
            return row.device_id if row is not None else None

        devices = None
        if self.config.server_id:
            core = self.backend.core
            store = GbDeviceStore(core.engine, core.clock, core.config.replica_id())
            devices = DeviceAccess(
                transport, store, self.config.server_id, self.config.device_realm,
                advertised, self.config.device_timeout_s, self.config.catalog_refresh_s,
            )  # fmt: skip
            devices.subscriptions = CatalogSubscriber(devices)
        self.devices = devices
        service = GbService(
            transport, self.links, self.backend, self.hub, advertised,
            self.backend.core.clock.now_us, page_size=self.config.catalog_page,
            max_streams=self.config.max_streams, device_of=device_of, devices=devices,
        )  # fmt: skip
        self.service = service
        tasks = [
            asyncio.create_task(run_link(transport, link, advertised, self._stop))
            for link in self.links
        ]
        bridge = None
        if devices is not None:  # device channels: recorded (`record`), watched live on demand
            self.recording = self._recording(devices)
            if self.hub is not None:
                clock = self.backend.core.clock
                loop = asyncio.get_running_loop()
                bridge = LiveBridge(self.recording, self.hub, loop, clock.now_us)
            tasks.append(asyncio.create_task(self.recording.run(self._stop)))
        log.info(
            "GB/T 28181 SIP on %s:%d (%d upper platforms; device access %s)",
            host, local[1], len(self.links), self.config.server_id or "off",
        )  # fmt: skip
        self._ready.set()
        await self._stop.wait()
        await service.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        if bridge is not None:
            bridge.close()
        if devices is not None:
            await devices.close()
        for link in self.links:
            if link.plan.registered:
                await unregister(transport, link, advertised)
        await transport.aclose()

    def _recording(self, devices: DeviceAccess) -> RecordingSupervisor:
        c = self.config
        timing = supervise.Timing(
            rtp_timeout_s=c.rtp_timeout_s,
            first_packet_s=max(c.rtp_timeout_s, FIRST_PACKET_S),
            reinvite_min_s=c.reinvite_min_s,
            reinvite_max_s=max(c.reinvite_max_s, c.reinvite_min_s),
            stable_s=max(60.0, c.rtp_timeout_s * 2),
            invite_answer_s=c.invite_answer_s,
        )
        backend = CoreRecordingBackend(self.backend.core, c.record_segment_s)
        return RecordingSupervisor(
            devices,
            backend,
            c.record,
            timing,
            tcp_patterns=c.media_tcp,
            tcp_active_patterns=c.media_tcp_active,
        )

    def transport_bad_messages(self) -> int:
        """Malformed SIP messages received so far (each logged and answered)."""
        return self.service.transport.bad_messages if self.service is not None else 0

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(10.0)


def gb28181(
    core: Core,
    hub: LiveHub | None,
    policy: Policy | None = None,
    unsent: Unsent | None = None,
    poke: Callable[[], None] | None = None,
) -> GbComponent | None:
    """The cascade when `[gb28181] enabled`; None otherwise. `unsent(device, camera)`: the
    (start, end) µs of the camera's segments still only on its agent (the scheduler's);
    `poke()`: tell the scheduler a footage request was filed."""
    config = core.config.gb28181
    if not config.enabled:
        return None
    try:
        keys = load_keys(core.config.data_path)
        audit: AuditLog | None = AuditLog(core.engine, core.clock, keys.evidence)
    except KeyFileError as exc:
        raise StartupError(f"gb28181: cascade viewing must be audited: {exc}") from exc
    backend = CoreBackend(core, policy or default_policy(), audit, unsent, poke)
    return GbComponent(config, backend, hub)
