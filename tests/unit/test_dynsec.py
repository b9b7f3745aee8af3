"""The dynamic security plugin's commands and answers (controller/enrollment/dynsec.py)."""

from __future__ import annotations

import json

import pytest

from controller.enrollment.dynsec import device_role, outcomes, payload


def test_commands_go_in_one_message() -> None:
    body = json.loads(payload([{"command": "deleteClient", "username": "dev1"}]))
    assert body == {"commands": [{"command": "deleteClient", "username": "dev1"}]}


def test_a_device_role_gives_its_own_topics_only() -> None:
    role = device_role("dev1")
    assert role["rolename"] == "vigil-device-dev1"
    sends = {a["topic"] for a in role["acls"] if a["acltype"] == "publishClientSend"}
    assert sends == {f"vigil/v1/+/+/dev1/{leaf}" for leaf in
                     ("state", "birth", "health", "event", "cmd_ack")}  # fmt: skip
    assert all("dev1" in a["topic"] and a["allow"] for a in role["acls"])
    assert not any(a["topic"].endswith("/cmd/#") for a in role["acls"]
                   if a["acltype"] == "publishClientSend")  # fmt: skip


def test_the_answers_come_in_order_with_their_errors() -> None:
    body = {"responses": [{"command": "deleteClient", "error": "Client not found"},
                          {"command": "deleteRole"}]}  # fmt: skip
    got = outcomes(json.dumps(body).encode(), ["deleteClient", "deleteRole"])
    assert got == ["Client not found", None]


@pytest.mark.parametrize(
    "body",
    [
        b'{"responses": [{"command": "createClient"}]}',
        b'{"responses": []}',
        b'{"responses": [{"command": "deleteClient"}, {"command": "deleteClient"}]}',
        b"{}",
        b"[1, 2]",
        b'{"responses": ["deleteClient"]}',
        b"\xff not json",
    ],
)
def test_anything_else_is_not_our_answer(body: bytes) -> None:
    with pytest.raises(ValueError):
        outcomes(body, ["deleteClient"])
