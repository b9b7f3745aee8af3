"""The controller's paho-mqtt client (MQTT 5), built one way for the fleet service and mqtt-tail.

Translates settings into a configured, not yet connected client: credentials, optional TLS,
capped reconnect backoff and a retained Will on the controller's state topic.
"""

from __future__ import annotations

from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from controller.fleet.topics import controller_state_topic
from protos.vigil.v1 import fleet_pb2


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """How the controller reaches the broker. `password` is a secret: never log it."""

    host: str
    port: int
    username: str
    password: str = ""
    ca_cert: str = ""
    client_id: str = "vigil-controller"
    keepalive_s: int = 30
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30
    # The fleet service's broker session outlives a disconnect (or a kill -9) by this long:
    # the broker queues its QoS 1 messages (events, evictions) until it is back.
    session_expiry_s: int = 86_400

    def __repr__(self) -> str:
        return (
            f"MqttSettings(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"client_id={self.client_id!r})"
        )


def controller_state(client_id: str, online: bool, session: int, at_us: int, reason: str) -> bytes:
    return fleet_pb2.DeviceState(
        device_id=client_id, online=online, session=session, at_unix_us=at_us, reason=reason
    ).SerializeToString()


def make_client(settings: MqttSettings, client_id: str | None = None) -> mqtt.Client:
    """A paho client with auth, TLS (when a CA is given) and capped reconnect backoff."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or settings.client_id,
        protocol=mqtt.MQTTv5,
    )
    if settings.username:
        client.username_pw_set(settings.username, settings.password or None)
    if settings.ca_cert:
        client.tls_set(ca_certs=settings.ca_cert)
    client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)
    # Unbounded in-flight window would hide a stuck broker; the default (20) throttles
    # command bursts, so allow more.
    client.max_inflight_messages_set(200)
    return client


def set_controller_will(client: mqtt.Client, client_id: str, session: int, at_us: int) -> None:
    """The controller's own death certificate, retained like a device's."""
    client.will_set(
        controller_state_topic(client_id),
        controller_state(client_id, False, session, at_us, "will"),
        qos=1,
        retain=True,
    )


def connect_persistent(client: mqtt.Client, settings: MqttSettings) -> None:
    """Connect (asynchronously) resuming the client id's session: clean start off and an
    MQTT 5 session expiry, so what the broker received for this controller while it was
    disconnected, restarting or killed is delivered when it comes back."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = settings.session_expiry_s
    client.connect_async(
        settings.host,
        settings.port,
        settings.keepalive_s,
        clean_start=settings.session_expiry_s <= 0,
        properties=props,
    )
