"""The fleet as one controller component: a broker (managed or external) plus FleetService.

`controller.toml`'s `[mqtt]` with an empty host means "no broker configured": the controller
then starts its own Mosquitto (controller.fleet.broker) in `<data_dir>/mosquitto` on 127.0.0.1 and
logs in with a generated password. A configured broker (Mosquitto, EMQX) is used as is, with
the password read from `password_file`.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Protocol

from controller.clock import Clock
from controller.fleet.broker import CONTROLLER_USER, BrokerSettings
from controller.fleet.broker_process import ManagedBroker
from controller.fleet.directory import DeviceDirectory
from controller.fleet.history_writer import HistoryWriter
from controller.fleet.mqtt import MqttSettings
from controller.fleet.service import FleetOptions, FleetService
from controller.fleet.shared import SharedFleetState
from controller.leader import Leadership, SoleLeader

log = logging.getLogger(__name__)


class MqttLike(Protocol):
    """The fields of controller.config.MqttConfig this component reads."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def username(self) -> str: ...
    @property
    def password_file(self) -> str: ...
    @property
    def ca_cert(self) -> str: ...


class FleetComponent:
    """start(): the managed broker when needed, then the fleet service; stop(): reverse."""

    def __init__(
        self,
        mqtt: MqttLike,
        data_dir: Path,
        clock: Clock,
        directory: DeviceDirectory,
        options: FleetOptions | None = None,
        leadership: Leadership | None = None,
        shared: SharedFleetState | None = None,
        history: HistoryWriter | None = None,
    ) -> None:
        """`leadership`: who raises alerts (SoleLeader: a lone controller); `shared`: the
        database tables replicas share the fleet view through (None: one controller);
        `history`: the writer of transitions and losses into the catalog (None: none kept)."""
        self.broker: ManagedBroker | None = None
        self.history = history
        settings = self._settings(mqtt, data_dir)
        # Built now, started in start(): the API and the scheduler hold it from the start.
        self.service = FleetService(
            settings,
            clock,
            directory,
            options or FleetOptions(),
            leadership=leadership or SoleLeader(),
            shared=shared,
            history=history,
        )

    def _settings(self, m: MqttLike, data_dir: Path) -> MqttSettings:
        """The managed broker (not started yet) and its generated password when no host is
        configured; else the configured broker, its password read from `password_file`."""
        # `client_id` (MqttConfig has it; older callers' objects may not): the replica's id.
        own = getattr(m, "client_id", "") or CONTROLLER_USER
        if not m.host:
            password = secrets.token_urlsafe(24)
            self.broker = ManagedBroker(
                BrokerSettings(
                    data_dir=data_dir / "mosquitto",
                    port=m.port,
                    accounts={own: password},
                )
            )
            return MqttSettings("127.0.0.1", m.port, own, password, client_id=own)
        password = ""
        if m.password_file:
            password = Path(m.password_file).read_text(encoding="utf-8").strip()
        user = m.username or own  # client id = account: one account per replica
        return MqttSettings(m.host, m.port, user, password, m.ca_cert, client_id=user)

    def start(self) -> None:
        if self.broker is not None:
            self.broker.start()
            log.info(
                "fleet: started a managed Mosquitto on 127.0.0.1:%d", self.broker.settings.port
            )
        if self.history is not None:
            self.history.start()
        self.service.start()

    def publish_retained(self, topic: str, payload: bytes) -> bool:
        """Publish a retained QoS 1 message on the controller's connection (the audit
        witness uses this); False when the fleet is not connected (retried next time)."""
        return self.service.publish_retained(topic, payload)

    def add_device_account(self, device_id: str, password: str) -> None:
        """Provision a device on the managed broker (the demo and enrolment use this)."""
        if self.broker is None:
            raise RuntimeError("device accounts of an external broker are managed there")
        self.broker.add_account(device_id, password)

    def stop(self) -> None:
        self.service.stop()
        if self.history is not None:
            self.history.stop()  # after the service: what it queued last is written
        if self.broker is not None:
            self.broker.stop()
