"""FleetService: the controller's live view of the fleet, fed by MQTT (the imperative shell).

Each device message (state/birth/health/event/cmd_ack, from link.BrokerLink: the connection,
its Will and persistent session, commands with correlation data) runs through the pure cores
(topic and identity checks, per-device rate limit, `monitor` transitions, `alerts` rules,
`history` downsampling); the results are kept in memory for the HTTP API: `devices()`,
`device(id)`, `alerts()`, `history(id)`, `events()`. Devices are asked to rebirth when the
monitor says so; command acks are matched; stored eviction reports are confirmed to their
agents (`receipts.py`).

Threads: paho's network loop delivers messages (`handle_message`), a ticker thread expires
silent devices and re-evaluates time-based alerts, a sync thread refreshes the device directory
(in memory: no database read per message) and, for replicas, exchanges health and alerts with
the shared database (controller.fleet.sync). One lock guards the tables and is never held
across I/O; every message is handled inside a broad guard, so no payload can stop the loop.

Replicas (`shared` given): each connects with its own client id, receives every device's
state/birth/event/cmd_ack itself and a share of the health stream (MQTT 5 shared
subscription); the fleet view folds in the health other replicas received. Alerts are
evaluated and raised by the leader (`leadership`) only; followers serve the leader's.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from controller.clock import Clock
from controller.fleet import alerts as al
from controller.fleet import history as hi
from controller.fleet import monitor as mo
from controller.fleet import transitions as tr
from controller.fleet.alert_book import AlertBook
from controller.fleet.decode import Decoded, decode_payload
from controller.fleet.directory import DeviceDirectory
from controller.fleet.history_writer import HistoryWriter
from controller.fleet.link import BrokerLink, FleetError
from controller.fleet.mqtt import MqttSettings
from controller.fleet.options import CommandRecord, FleetOptions, match_ack
from controller.fleet.ratelimit import Bucket, take
from controller.fleet.receipts import LossReceipts
from controller.fleet.shared import HealthRow, SharedFleetState
from controller.fleet.sync import ReplicaSync, every, fold_health
from controller.fleet.topics import fleet_subscriptions, parse_parts
from controller.leader import Leadership, SoleLeader
from protos.vigil.v1 import fleet_pb2

log = logging.getLogger(__name__)


# (device_id, leaf, payload at_unix_us): called after a message changed the state table.
AppliedHook = Callable[[str, str, int], None]


class FleetService:
    """Start with `start()`, stop with `stop()`; queries are safe from any thread."""

    def __init__(
        self,
        mqtt_settings: MqttSettings,
        clock: Clock,
        directory: DeviceDirectory,
        options: FleetOptions | None = None,
        on_applied: AppliedHook | None = None,
        leadership: Leadership | None = None,
        shared: SharedFleetState | None = None,
        history: HistoryWriter | None = None,
    ) -> None:
        self._clock = clock
        self._directory = directory
        opt = options or FleetOptions()
        if shared is not None:  # health is split over replicas: a jump in numbers is normal
            opt = dataclasses.replace(
                opt, monitor=dataclasses.replace(opt.monitor, health_gaps=False)
            )
        self._opt = opt
        self._on_applied = on_applied
        self._leadership: Leadership = leadership or SoleLeader()
        self._sync = ReplicaSync(shared) if shared is not None else None
        self._was_leader = False
        self._share_group: str | None = None
        self._link = BrokerLink(
            mqtt_settings, clock, self._deliver, lambda: fleet_subscriptions(self._share_group)
        )
        self._lock = threading.Lock()
        self._records: dict[str, mo.DeviceRecord] = {}
        self._buckets: dict[str, Bucket] = {}
        self._history: dict[str, tuple[hi.HealthPoint, ...]] = {}
        # Transitions, losses and alerts for the catalog's history (issue 15): queued, written
        # in batches by `history` on its own thread; `_written`: camera states last queued.
        self._history_out = history
        self.receipts = LossReceipts(lambda: self._link.client, self._where_is)
        if history is not None:
            history.on_losses_written = self.receipts.send
        self._written: dict[str, tr.CameraStates] = {}
        self._alerts = AlertBook(opt.rules, opt.alert_log_kept, self._alert_changed)
        self._events: collections.deque[fleet_pb2.Event] = collections.deque(
            maxlen=self._opt.events_kept
        )
        self._commands: collections.OrderedDict[str, CommandRecord] = collections.OrderedDict()
        self._counters: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._syncer: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Load the directory (and the shared group, for a replica), connect
        (asynchronously, retrying with backoff) and start the ticker and sync threads."""
        if self._sync is not None:
            self._share_group = self._sync.state.share_group()
        try:
            self._refresh_directory()
        except Exception:  # the database may come later: the sync thread retries
            log.exception("fleet: could not load the device directory; retrying")
        self._link.start()
        self._stop.clear()
        self._ticker = every(self._stop, self._opt.tick_s, self.tick, "fleet-ticker", self._failed)
        self._syncer = every(self._stop, self._opt.sync_s, self.sync, "fleet-sync", self._failed)

    def stop(self) -> None:
        """Say goodbye (retained offline state, reason clean) and disconnect."""
        self._stop.set()
        for thread in (self._ticker, self._syncer):
            if thread is not None:
                thread.join(timeout=10)
        if self._sync is not None:  # the last reports and alert changes, best effort
            try:
                self._sync.flush_health()
                if self._raises_alerts():
                    self._sync.flush_alerts(self._leadership.epoch())
            except Exception:
                log.warning("fleet: could not write the last shared health on stop")
        self._link.stop()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._link.wait_connected(timeout_s)

    @property
    def client_id(self) -> str:
        """The MQTT client id this controller holds on the broker (its own, per replica)."""
        return self._link.client_id

    def connections(self) -> int:
        """Successful connects so far: more than one means the broker dropped this client
        (e.g. another client took its id)."""
        return self._link.connections

    def publish_retained(self, topic: str, payload: bytes) -> bool:
        """Queue a retained QoS 1 message (the audit witness); False when not connected."""
        return self._link.publish(topic, payload, retain=True)

    def _deliver(self, topic: str, payload: bytes, corr: bytes | None) -> None:
        """(paho's network thread) One message from the broker."""
        try:
            self.handle_message(topic, payload, corr)
        except Exception:  # a bug must not kill paho's loop and blind the controller
            self._counters["internal_errors"] += 1
            log.exception("fleet: error handling a message on %s", topic[:200])

    # ---- the message path --------------------------------------------------------------
    def handle_message(self, topic: str, payload: bytes, correlation: bytes | None = None) -> str:
        """Apply one fleet message; returns what happened (for counters and tests)."""
        now_us = self._clock.now_us()
        with self._lock:
            verdict = self._handle_locked(topic, payload, correlation, now_us)
            self._counters[verdict] += 1
        return verdict

    def _handle_locked(
        self, topic: str, payload: bytes, correlation: bytes | None, now_us: int
    ) -> str:
        parts = topic.split("/")
        device_id = parts[4] if len(parts) == 6 else ""
        registered = self._registered(device_id, parts)
        if registered is None:
            return "unknown_device"
        allowed, self._buckets[device_id] = take(
            self._buckets.get(device_id), self._clock.monotonic(), self._opt.rates
        )
        record = self._records.get(device_id) or mo.DeviceRecord(device_id, *registered)
        if not allowed:
            self._records[device_id] = mo.note_flood(record, now_us)
            return "flood_dropped"
        parsed = parse_parts(parts)
        if parsed is None:
            return "bad_topic"
        decoded = decode_payload(parsed, payload)
        if not isinstance(decoded, Decoded):
            return decoded.reason
        t, m = decoded.topic, decoded.message
        problem = mo.check_identity(t.device_id, t.county, t.site, m.device_id, registered)  # type: ignore[union-attr]
        if problem is not None:
            return problem
        if isinstance(m, fleet_pb2.CommandAck):
            return match_ack(self._commands, device_id, m, correlation)
        out = mo.on_message(record, m, now_us, self._opt.monitor)
        self._records[device_id] = out.record
        if self._history_out is not None:
            self._note_history(record, out.record, m, now_us)
        if out.verdict in (mo.Verdict.REPLAY, mo.Verdict.STALE):
            return str(out.verdict)
        if isinstance(m, fleet_pb2.Health):
            self._history[device_id] = hi.add_sample(
                self._history.get(device_id, ()), m, now_us, self._opt.history
            )
            if self._sync is not None:
                row = HealthRow(
                    device_id, m.session, m.seq, now_us, out.record.clock_skew_s, payload
                )
                self._sync.note_health(row)
        for action in out.actions:
            if isinstance(action, mo.RecordEvent):
                self._events.append(action.event)
            else:
                self._publish_rebirth(action.county, action.site, action.device_id, action.why)
        if not isinstance(m, fleet_pb2.Event) and self._raises_alerts():
            self._evaluate(out.record, now_us)  # no alert rule reads events
        if self._on_applied is not None:
            self._on_applied(device_id, t.leaf, getattr(m, "at_unix_us", 0))
        return str(out.verdict)

    def _registered(self, device_id: str, parts: list[str]) -> tuple[str, str] | None:
        if not device_id:
            return None
        found = self._directory.lookup(device_id)
        if found is not None:
            return found
        if not self._opt.accept_unregistered:
            return None
        known = self._records.get(device_id)
        return (known.county, known.site) if known else (parts[2], parts[3])

    def _evaluate(self, record: mo.DeviceRecord, now_us: int) -> None:
        self._alerts.evaluate(record, now_us)

    def _failed(self, name: str) -> None:
        self._counters["sync_errors" if name == "fleet-sync" else "tick_errors"] += 1

    def tick(self) -> None:
        """Expire silent devices and re-evaluate time-based alerts (called by the ticker)."""
        now_us = self._clock.now_us()
        leads = self._raises_alerts()
        with self._lock:
            for device_id, record in list(self._records.items()):
                expired = mo.expire(record, now_us, self._opt.monitor)
                if expired is not record:
                    self._records[device_id] = expired
                    if self._history_out is not None:
                        self._note_history(record, expired, None, now_us)
                elif not leads or not self._alerts.time_sensitive(record, now_us):
                    continue  # nothing about it changes with time alone: skip the rules
                if leads:
                    self._evaluate(expired, now_us)

    def _note_history(
        self, before: mo.DeviceRecord, after: mo.DeviceRecord, m: Any, now_us: int
    ) -> None:
        """Queue what this message changed for the history (under the fleet lock; no I/O)."""
        assert self._history_out is not None
        written = self._written.get(after.device_id, {})
        changes, self._written[after.device_id] = tr.device_changes(before, after, written, now_us)
        losses: list[Any] = []
        unannounced: list[Any] = []
        if isinstance(m, fleet_pb2.Event):
            birth = after.birth
            cameras = {c.camera_id for c in birth.cameras} if birth is not None else set()
            more, facts = tr.event_history(m, now_us, cameras)
            changes += more
            losses, unannounced = facts.rows, facts.unannounced
        self._history_out.note(changes, losses, unannounced)

    def _alert_changed(self, raised: list[al.Alert], cleared: list[al.Alert]) -> None:
        if self._sync is not None:
            self._sync.note_alerts(raised, cleared)
        if self._history_out is not None:
            self._history_out.note(tr.alert_changes(raised, cleared, self._clock.now_us()))

    def _raises_alerts(self) -> bool:
        """The leader raises alerts; with replicas, only once it has taken over the alerts
        already raised (the next sync after it became leader), so none is raised twice."""
        return self._leadership.is_leader() and (self._sync is None or self._was_leader)

    def _refresh_directory(self) -> None:
        refresh = getattr(self._directory, "refresh", None)
        if refresh is not None:
            refresh()

    def sync(self) -> None:
        """Refresh the directory; for a replica, write the health it received, fold in what
        the others received, and write (leader) or read (follower) the alerts. I/O happens
        outside the fleet lock; only the merges take it."""
        self._refresh_directory()
        if self._sync is None:
            return
        leads = self._leadership.is_leader()
        self._sync.flush_health()
        if leads and not self._was_leader:
            taken = self._sync.take_over_alerts(self._leadership.epoch())
            if taken is None:
                leads = False  # a newer leadership holds the alerts: follow this round
            else:
                with self._lock:  # what was raised stays raised, not raised again
                    self._alerts.seed(taken)
        elif not leads and self._was_leader:
            self._sync.forget_alert_changes()
        self._was_leader = leads
        rows = self._sync.pull_health()
        now_us = self._clock.now_us()
        with self._lock:
            merged = fold_health(self._records, self._history, rows, self._opt.history)
            self._counters["shared_health_merged"] += len(merged)
            for record in merged if leads else ():
                self._evaluate(record, now_us)
        if leads:
            self._sync.flush_alerts(self._leadership.epoch())
            if self._sync.resync_due():
                with self._lock:
                    active = self._alerts.current()
                self._sync.state.replace_alerts(active, self._leadership.epoch())
        else:
            self._sync.pull_alerts()

    # ---- publishing ------------------------------------------------------------------
    def _publish_rebirth(self, county: str, site: str, device_id: str, why: str) -> None:
        self._counters["rebirth_requests"] += 1
        log.info("fleet: asking %s to rebirth (%s)", device_id, why)
        self._link.rebirth(county, site, device_id)

    def _where_is(self, device_id: str) -> tuple[str, str] | None:
        with self._lock:
            record = self._records.get(device_id)
        return (record.county, record.site) if record else self._directory.lookup(device_id)

    def send_command(self, device_id: str, command: fleet_pb2.Command) -> str:
        """Publish a (validated: see commands.build_command) command; returns its correlation id."""
        where = self._where_is(device_id)
        if where is None:
            raise FleetError(f"unknown device {device_id!r}")

        def note(corr: str) -> None:  # before an ack can come back; not across the publish
            with self._lock:
                self._commands[corr] = CommandRecord(
                    corr, device_id, command.verb, self._clock.now_us()
                )
                while len(self._commands) > self._opt.pending_commands_kept:
                    self._commands.popitem(last=False)

        return self._link.send_command(where, device_id, command, note)

    def request_rebirth(self, device_id: str) -> str:
        return self.send_command(device_id, fleet_pb2.Command(verb="rebirth"))

    # ---- queries ---------------------------------------------------------------------
    def devices(self) -> list[mo.DeviceRecord]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.device_id)

    def device(self, device_id: str) -> mo.DeviceRecord | None:
        with self._lock:
            return self._records.get(device_id)

    def alerts(self, device_id: str | None = None) -> list[al.Alert]:
        if self._sync is not None and not self._raises_alerts():
            return [a for a in self._sync.alerts if device_id is None or a.device_id == device_id]
        with self._lock:
            return self._alerts.current(device_id)

    def alert_log(self) -> list[tuple[str, al.Alert]]:
        """Raise/clear history of this replica (a follower raises nothing: empty there)."""
        with self._lock:
            return list(self._alerts.log)

    def history(self, device_id: str) -> list[hi.HealthPoint]:
        with self._lock:
            return list(self._history.get(device_id, ()))

    def events(self, device_id: str | None = None) -> list[fleet_pb2.Event]:
        with self._lock:
            return [e for e in self._events if device_id is None or e.device_id == device_id]

    def command(self, correlation_id: str) -> CommandRecord | None:
        with self._lock:
            return self._commands.get(correlation_id)

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)


__all__ = ["AppliedHook", "CommandRecord", "FleetError", "FleetOptions", "FleetService"]
