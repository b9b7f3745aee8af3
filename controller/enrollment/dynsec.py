"""Device accounts on an external Mosquitto through its dynamic security plugin.

With `mqtt.mode = "external"` and `enrollment.broker_accounts = "dynsec"`, enrollment creates
the device's client on the city's broker (username = client id = device id, a fresh password
handed to the device once) with a role of its own, `vigil-device-<id>`, holding the device's
rights (the managed broker's `pattern` lines with the id written in: Mosquitto 2.0's dynsec
ACLs do not expand `%u`), plus `enrollment.broker_role` when set. Retiring or replacing the
device deletes both: the broker disconnects the device and refuses its logins.

The commands go to `$CONTROL/dynamic-security/v1` over a short connection with the
controller's own account, which needs the plugin's admin rights (docs/deployment.md), and a
client id of its own, so the fleet's connection is never knocked off.

`device_role`, `payload` and `outcomes` are pure (unit-tested); `DynsecAccounts` is the shell.
"""

from __future__ import annotations

import json
import secrets
import threading
from typing import Any

import paho.mqtt.client as mqtt

from controller.fleet.broker import BrokerError
from controller.fleet.mqtt import MqttSettings, make_client

TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE = TOPIC + "/response"
LEAVES = ("state", "birth", "health", "event", "cmd_ack")
GONE = ("Client not found", "Role not found")
Command = dict[str, Any]


def role_name(device_id: str) -> str:
    return f"vigil-device-{device_id}"


def device_role(device_id: str) -> Command:
    """createRole for the device's own rights: write its five topics, read its commands."""
    own = f"vigil/v1/+/+/{device_id}"
    acls: list[dict[str, Any]] = [
        {"acltype": "publishClientSend", "topic": f"{own}/{leaf}", "allow": True} for leaf in LEAVES
    ]
    acls += [
        {"acltype": "subscribePattern", "topic": f"{own}/cmd/#", "allow": True},
        {"acltype": "publishClientReceive", "topic": f"{own}/cmd/#", "allow": True},
    ]
    return {"command": "createRole", "rolename": role_name(device_id), "acls": acls}


def payload(commands: list[Command]) -> bytes:
    return json.dumps({"commands": commands}).encode()


def outcomes(body: bytes, names: list[str]) -> list[str | None]:
    """The plugin's answers to `names`, in order: None when done, else the error text.
    A payload that is not the answer to exactly these commands raises ValueError."""
    data = json.loads(body)
    responses = data.get("responses") if isinstance(data, dict) else None
    if not isinstance(responses, list) or len(responses) != len(names):
        raise ValueError("not the answer to these commands")
    found: list[str | None] = []
    for response, name in zip(responses, names, strict=True):
        if not isinstance(response, dict) or response.get("command") != name:
            raise ValueError("not the answer to these commands")
        error = response.get("error")
        found.append(str(error) if error else None)
    return found


class DynsecAccounts:
    def __init__(self, settings: MqttSettings, role: str = "", timeout_s: float = 10.0) -> None:
        self._settings = settings
        self._role = role
        self._timeout_s = timeout_s
        self._lock = threading.Lock()

    def grant(self, device_id: str) -> tuple[str, str]:
        password = secrets.token_urlsafe(24)
        roles = [{"rolename": role_name(device_id)}]
        roles += [{"rolename": self._role}] if self._role else []
        create = {"command": "createClient", "username": device_id, "password": password,
                  "clientid": device_id, "roles": roles}  # fmt: skip
        role_err, client_err = self.run([device_role(device_id), create])
        if role_err not in (None, "Role already exists"):
            raise BrokerError(f"the broker refused the role of {device_id}: {role_err}")
        if client_err == "Client already exists":  # enrolled again or renewed: new password
            cmd = {"command": "setClientPassword", "username": device_id, "password": password}
            client_err = self.run([cmd])[0]
        if client_err is not None:
            raise BrokerError(f"the broker refused the account of {device_id}: {client_err}")
        return device_id, password

    def remove(self, device_id: str) -> None:
        """Delete the client (the broker disconnects it) and its role; absent ones are fine."""
        errors = self.run(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": role_name(device_id)},
            ]
        )
        for error in errors:
            if error is not None and error not in GONE:
                raise BrokerError(f"the broker did not remove {device_id}'s account: {error}")

    def run(self, commands: list[Command]) -> list[str | None]:
        """Send `commands` in one message; their answers. BrokerError when the broker cannot
        be reached, refuses the controller, or does not answer within the timeout."""
        s = self._settings
        names = [str(c["command"]) for c in commands]
        client = make_client(s, f"{s.client_id}-accounts-{secrets.token_hex(4)}")
        answered = threading.Event()
        result: list[list[str | None]] = []
        refused: list[str] = []

        def on_connect(c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
            if rc.is_failure:
                refused.append(str(rc))
                answered.set()
                return
            c.subscribe(RESPONSE, qos=1)

        def on_subscribe(c: mqtt.Client, _u: object, _m: object, _rc: object, _p: object) -> None:
            c.publish(TOPIC, payload(commands), qos=1)

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            try:
                result.append(outcomes(bytes(msg.payload), names))
            except ValueError:
                return
            answered.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        with self._lock:
            try:
                client.connect(s.host, s.port, keepalive=30)
            except OSError as exc:
                raise BrokerError(f"broker {s.host}:{s.port} unreachable: {exc}") from None
            client.loop_start()
            try:
                if not answered.wait(self._timeout_s):
                    raise BrokerError(
                        f"broker {s.host}:{s.port}: no answer to {', '.join(names)} within "
                        f"{self._timeout_s:.0f} s (does the controller's account have the "
                        "dynamic security admin role?)"
                    )
            finally:
                client.disconnect()
                client.loop_stop()
        if refused:
            raise BrokerError(f"broker {s.host}:{s.port} refused the controller: {refused[0]}")
        return result[0]
