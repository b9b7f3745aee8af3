"""HealthReporter: the agent's MQTT presence (state, birth, health, events) and command handler.

The shell around the pure `payloads` and `commands` modules. Inputs are small Protocols and
callables (buffer view, camera statuses, hold store, command handlers), so the lead wires the
real `SegmentBuffer` and capture manager, and tests pass plain objects.

Session fencing: each connection gets a new session number (a per-boot base plus the number
of connections made), carried in the retained `state`, in the Last Will of the same
connection and in every message, so the controller can tell a late Will of an old connection
from the death of the current one. `health` and `event` carry their own sequence numbers,
restarting with each session.

Threads: paho's loop (network, callbacks) and one reporter thread (health cadence, command
execution, flushing events queued while offline, eviction reports). Command handlers run on
the reporter thread, so a slow reconfigure never stalls MQTT keepalives.

Eviction reports (`evictions.py`) are marked reported in the buffer only once the controller
confirms it stored them (`cmd/loss_recorded`), and are resent until then.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.clock import Clock
from edge_agent.config import AgentConfig
from edge_agent.health import payloads as pl
from edge_agent.health import textfile
from edge_agent.health.dispatch import command_ack, run_command
from edge_agent.health.evictions import LOSS_RECORDED_VERB, EvictionReports
from edge_agent.health.inputs import ReporterInputs, psutil_probe
from edge_agent.health.outbox import Outbox
from edge_agent.health.topics import DeviceTopics
from edge_agent.model import AgentEvent, EvictionRecord
from protos.vigil.v1 import fleet_pb2

log = logging.getLogger(__name__)

MIN_HEALTH_SPACING_S = 1.0
POLL_S = 0.5
# How often figures are read to spot a significant change (psutil + a buffer query each time).
CHANGE_CHECK_S = 2.0
MAX_PENDING_COMMANDS = 64


class HealthReporter:
    def __init__(
        self,
        config: AgentConfig,
        clock: Clock,
        inputs: ReporterInputs,
        *,
        agent_version: str,
        password: str = "",
        session_base: int | None = None,
        losses: EvictionReports | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._in = inputs
        self._version = agent_version
        self._password = password
        self._topics = DeviceTopics(config.county, config.site, config.device_id)
        self._system = inputs.system or psutil_probe(config.data_dir)
        self._base = clock.now_us() if session_base is None else session_base
        self._started_mono = clock.monotonic()
        self._connections = 0
        self._session = 0
        self._health_seq = 0
        self._event_seq = 0
        self._lock = threading.RLock()
        self._outbox: Outbox[AgentEvent] = Outbox(config.mqtt.offline_queue)
        self._commands: queue.Queue[tuple[str, bytes, bytes | None]] = queue.Queue(
            MAX_PENDING_COMMANDS
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._needs_birth = False
        self._last_health: fleet_pb2.Health | None = None
        self._last_health_mono = -1e9
        self._last_check_mono = -1e9
        self._textfile = textfile.Writer(
            Path(config.metrics_textfile_dir or Path(config.data_dir) / "metrics")
        )
        self._disk_low = False
        self._losses = losses or EvictionReports()
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def config(self) -> AgentConfig:
        return self._config

    @property
    def session(self) -> int:
        return self._session

    @property
    def dropped_events_total(self) -> int:
        with self._lock:
            return self._outbox.dropped_total

    @property
    def losses(self) -> EvictionReports:
        return self._losses

    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Connect in the background (retrying with capped backoff) and start reporting."""
        mq = self._config.mqtt
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self._config.device_id, protocol=mqtt.MQTTv5
        )
        client.username_pw_set(mq.username or self._config.device_id, self._password or None)
        if mq.ca_cert:
            client.tls_set(ca_certs=mq.ca_cert)
        client.reconnect_delay_set(1, 60)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._set_will(client, self._base + self._connections + 1)
        self._client = client
        client.connect_async(mq.host, mq.port, keepalive=30)
        client.loop_start()
        self._thread = threading.Thread(target=self._run, name="health-reporter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Publish a clean offline state (no Will is sent), then disconnect."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        client, self._client = self._client, None
        if client is None:
            return
        if self._connected.is_set():
            payload = pl.state(
                self._config.device_id, False, self._session, self._clock.now_us(), "clean"
            )
            info = client.publish(self._topics.state, payload, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=5)
            except RuntimeError:
                pass
        client.disconnect()
        client.loop_stop()
        self._connected.clear()

    def _set_will(self, client: mqtt.Client, session: int) -> None:
        will = pl.state(self._config.device_id, False, session, self._clock.now_us(), "will")
        client.will_set(self._topics.state, will, qos=1, retain=True)

    # ---- paho callbacks (network thread) ---------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning(
                "mqtt %s:%s refused us: %s", self._config.mqtt.host, self._config.mqtt.port, rc
            )
            return
        with self._lock:
            self._connections += 1
            self._session = self._base + self._connections
            self._health_seq = 0
            self._event_seq = 0
            # The next connection's Will must carry the next session number.
            self._set_will(client, self._base + self._connections + 1)
        client.subscribe(self._topics.commands, qos=1)
        self._connected.set()
        self._needs_birth = True
        self._wake.set()
        log.info("mqtt connected, session %d", self._session)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("mqtt disconnected (%s); reconnecting with backoff", rc)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        verb = self._topics.verb_of(msg.topic)
        if verb is None:
            return
        if verb == LOSS_RECORDED_VERB:  # the controller's receipt: no CommandAck
            try:
                self._losses.receipt(
                    list(fleet_pb2.Command.FromString(bytes(msg.payload)).fact_ids)
                )
            except Exception:
                log.warning("unreadable loss receipt ignored")
            self._wake.set()
            return
        try:
            self._commands.put_nowait((verb, bytes(msg.payload), corr))
        except queue.Full:
            self._ack(verb, corr, ok=False, error="agent busy: too many pending commands")
        self._wake.set()

    # ---- the reporter thread ---------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(POLL_S)
            self._wake.clear()
            try:
                self._step()
            except Exception:  # keep reporting whatever one input does
                log.exception("health reporter step failed")

    def _step(self) -> None:
        if self._connected.is_set() and self._needs_birth:
            self._needs_birth = False
            self._losses.reconnected()
            self._publish_birth()
            self._publish_health(force=True)
            self._flush_outbox()
        while True:
            try:
                verb, payload, corr = self._commands.get_nowait()
            except queue.Empty:
                break
            self._execute(verb, payload, corr)
        check_every = min(CHANGE_CHECK_S, self._config.mqtt.health_interval_s)
        if self._clock.monotonic() - self._last_check_mono >= check_every:
            self._last_check_mono = self._clock.monotonic()
            self._publish_health(force=False)
        self._report_evictions()

    def _publish_birth(self) -> None:
        client = self._client
        if client is None:
            return
        with self._lock:
            # A birth restarts both sequences (the controller does the same on receipt).
            self._health_seq = 0
            self._event_seq = 0
            now = self._clock.now_us()
            state = pl.state(self._config.device_id, True, self._session, now)
            client.publish(self._topics.state, state, qos=1, retain=True)
            disk_total = self._system().disk_total_bytes
            capabilities = list(pl.CAPABILITIES)
            if self._in.on_upload_range is not None:
                capabilities.append("upload_range")
            birth = pl.birth(
                self._config, self._session, now, self._version, disk_total, capabilities
            )
            client.publish(self._topics.birth, birth.SerializeToString(), qos=1)

    def _publish_health(self, force: bool) -> None:
        now_mono = self._clock.monotonic()
        since = now_mono - self._last_health_mono
        if not force and since < MIN_HEALTH_SPACING_S:
            return
        now_us = self._clock.now_us()
        system = self._system()
        low, disk_event = pl.disk_low_change(
            self._disk_low, system.disk_free_bytes, self._config.buffer.disk_low_bytes, now_us
        )
        self._disk_low = low
        if disk_event is not None:
            self.submit_event(disk_event)
        stats = self._in.buffer.stats() if self._in.buffer is not None else None
        rate = self._in.upload_rate_bps() if self._in.upload_rate_bps is not None else 0
        cams = list(self._in.statuses())
        skew = self._in.clock_skew() if self._in.clock_skew is not None else None
        routes = self._in.uplink_routes() if self._in.uplink_routes is not None else None
        client = self._client
        with self._lock:
            msg = pl.health(
                self._config.device_id,
                self._session,
                self._health_seq + 1,
                now_us,
                system,
                stats,
                cams,
                rate,
            )
            pl.add_clock(msg, skew, now_mono - self._started_mono)
            pl.add_routes(msg, routes)
            due = since >= self._config.mqtt.health_interval_s
            self._textfile.maybe_write(msg, now_mono, self._config.mqtt.health_interval_s)
            if not (force or due or pl.significant_change(self._last_health, msg)):
                return
            if client is None or not self._connected.is_set():
                return
            self._health_seq += 1
            client.publish(self._topics.health, msg.SerializeToString(), qos=0)
            self._last_health = msg
            self._last_health_mono = now_mono

    def publish_health_now(self) -> None:
        """Ask for a health report at the next step (e.g. after a capture restart)."""
        self._last_health = None
        self._last_check_mono = -1e9
        self._wake.set()

    # ---- events ----------------------------------------------------------------------
    def submit_event(self, ev: AgentEvent) -> None:
        """Publish an event now (QoS 1), or queue it while the broker is unreachable.

        Thread-safe: the capture manager calls this from its workers."""
        with self._lock:
            if self._connected.is_set() and not self._needs_birth and not len(self._outbox):
                self._publish_event(ev)
            else:
                self._outbox.push(ev)
                self._wake.set()

    def _publish_event(self, ev: AgentEvent) -> None:
        client = self._client
        if client is None:
            return
        self._event_seq += 1
        msg = pl.event(ev, self._config.device_id, self._session, self._event_seq)
        client.publish(self._topics.event, msg.SerializeToString(), qos=1)

    def _publish_losses(self, recs: Sequence[EvictionRecord]) -> None:
        """Unsent evictions as one event (each fact confirmed on its own: evictions.py)."""
        client = self._client
        if client is None:
            return
        self._event_seq += 1
        msg = pl.eviction_batch(
            recs, self._config.device_id, self._session, self._event_seq, self._clock.now_us()
        )
        client.publish(self._topics.event, msg.SerializeToString(), qos=1)

    def _flush_outbox(self) -> None:
        with self._lock:
            if not self._connected.is_set():
                return
            dropped = self._outbox.take_dropped()
            for ev in self._outbox.drain():
                self._publish_event(ev)
            if dropped:
                limit = self._config.mqtt.offline_queue
                detail = f"{dropped} events dropped while offline (queue of {limit})"
                self._publish_event(
                    AgentEvent(
                        "events_dropped", self._clock.now_us(), size_bytes=dropped, detail=detail
                    )
                )

    def _report_evictions(self) -> None:
        """Mark what the controller confirmed; (re)send what is due (see evictions.py)."""
        buffer = self._in.buffer
        online = self._connected.is_set() and not self._needs_birth
        if buffer is None or not (online or self._losses.has_receipts()):
            return  # offline: no buffer query every step
        pending = buffer.evictions(True)
        done = self._losses.confirmed(pending)
        if done:
            try:
                buffer.mark_evictions_reported(done)
            except Exception:
                log.exception("could not mark evictions %s reported", done)
        self._losses.forget_missing(pending)
        if not online:
            return
        now = self._clock.monotonic()
        with self._lock:
            if len(self._outbox):
                self._flush_outbox()
            due = self._losses.due([r for r in pending if r.record_id not in done], now)
            for part in self._losses.messages(due):
                self._publish_losses(part)
                for rec in part:
                    self._losses.sent(rec, now)

    # ---- commands (dispatch.py) -------------------------------------------------------
    def _ack(
        self, verb: str, corr: bytes | None, ok: bool, error: str = "", result: str = ""
    ) -> None:
        client = self._client
        if client is None:
            return
        ack = command_ack(self._config.device_id, verb, ok, error, result, self._clock.now_us())
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if corr is not None:
            props.CorrelationData = corr
        client.publish(self._topics.cmd_ack, ack.SerializeToString(), qos=1, properties=props)

    def _execute(self, verb: str, payload: bytes, corr: bytes | None) -> None:
        ok, error, result = run_command(
            verb, payload, self._config, self._in, self._rebirth, self._reconfigured
        )
        self._ack(verb, corr, ok, error, result)

    def _rebirth(self) -> None:
        self._publish_birth()
        self._publish_health(force=True)

    def _reconfigured(self, config: AgentConfig) -> None:
        self._config = config
        self._publish_birth()
