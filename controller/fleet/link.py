"""The fleet's MQTT connection (the imperative edge of FleetService, service.py).

Connects asynchronously (paho retries with backoff) with a Will, resuming its broker session
(clean start off, `session_expiry_s`: what arrived while it was away is delivered), announces
the controller
(retained `vigil/v1/controller/<id>/state`, online with this session) and subscribes on every
connect, hands each message to the service, publishes commands with MQTT 5 correlation data,
and on stop says goodbye (retained offline state, reason clean) before disconnecting.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from controller.clock import Clock
from controller.fleet.mqtt import (
    MqttSettings,
    connect_persistent,
    controller_state,
    make_client,
    set_controller_will,
)
from controller.fleet.topics import command_topic, controller_state_topic, device_topic
from protos.vigil.v1 import fleet_pb2

log = logging.getLogger("controller.fleet.service")

# (topic, payload, correlation data): one message from the broker.
Deliver = Callable[[str, bytes, bytes | None], None]


class FleetError(Exception):
    """A fleet operation cannot be done (unknown device, broker not connected)."""


class BrokerLink:
    """`start()` connects in the background; `subscriptions()` is asked on every connect."""

    def __init__(
        self,
        settings: MqttSettings,
        clock: Clock,
        deliver: Deliver,
        subscriptions: Callable[[], list[str]],
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._deliver = deliver
        self._subscriptions = subscriptions
        self._state_topic = controller_state_topic(settings.client_id)
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._stopping = False
        self.session = 0
        self.connections = 0  # successful connects: more than one, the broker dropped us

    def start(self) -> None:
        self._stopping = False
        self.session = self._clock.now_us()
        client = make_client(self._settings)
        set_controller_will(client, self._settings.client_id, self.session, self.session)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        connect_persistent(client, self._settings)  # the broker keeps our session meanwhile
        client.loop_start()

    def stop(self) -> None:
        """Say goodbye (retained offline state, reason clean) and disconnect."""
        self._stopping = True
        client, self._client = self._client, None
        if client is None:
            return
        if self._connected.is_set():
            payload = controller_state(
                self._settings.client_id, False, self.session, self._clock.now_us(), "clean"
            )
            info = client.publish(self._state_topic, payload, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=5)
            except RuntimeError:
                pass
        client.disconnect()
        client.loop_stop()
        self._connected.clear()

    @property
    def client(self) -> mqtt.Client | None:
        """The paho client while started (receipts.py publishes on it)."""
        return self._client

    @property
    def client_id(self) -> str:
        return self._settings.client_id

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Queue a QoS 1 message; False when there is no connection to queue it on."""
        client = self._client
        if client is None or (retain and not self._connected.is_set()):
            return False
        return client.publish(topic, payload, qos=1, retain=retain).rc == mqtt.MQTT_ERR_SUCCESS

    def send_command(
        self,
        where: tuple[str, str],
        device_id: str,
        command: Any,
        before: Callable[[str], None],
    ) -> str:
        """Publish `command` (a fleet_pb2.Command) to the device at (county, site) with a
        fresh correlation id and the device's cmd_ack topic as the response topic; returns
        the id (FleetError when not connected). `before(id)` runs first (to record it before
        an ack can come back)."""
        client = self._client
        if client is None or not self._connected.is_set():
            raise FleetError("not connected to the MQTT broker")
        corr = uuid.uuid4().hex
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.CorrelationData = corr.encode()
        props.ResponseTopic = device_topic(where[0], where[1], device_id, "cmd_ack")
        topic = command_topic(where[0], where[1], device_id, command.verb)
        before(corr)
        client.publish(topic, command.SerializeToString(), qos=1, properties=props)
        return corr

    def rebirth(self, county: str, site: str, device_id: str) -> None:
        payload = fleet_pb2.Command(verb="rebirth").SerializeToString()
        self.publish(command_topic(county, site, device_id, "rebirth"), payload)

    # ---- paho callbacks (network thread) ---------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("broker %s:%s refused the controller: %s", *self._where(), rc)
            return
        self.connections += 1
        payload = controller_state(
            self._settings.client_id, True, self.session, self._clock.now_us(), ""
        )
        client.publish(self._state_topic, payload, qos=1, retain=True)
        client.subscribe([(t, 1) for t in self._subscriptions()])
        self._connected.set()
        log.info("fleet: connected to %s:%s", *self._where())

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self._connected.clear()
        if not self._stopping:
            log.warning("fleet: lost broker %s:%s (%s); reconnecting", *self._where(), rc)

    def _where(self) -> tuple[str, int]:
        return self._settings.host, self._settings.port

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        self._deliver(msg.topic, bytes(msg.payload), corr)
