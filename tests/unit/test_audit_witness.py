"""Audit witness checkpoints: payload round trip, strict parsing, the cut tail they expose, the
publisher's tick, and the broker ACL that lets only controller accounts write the topic."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.audit.chain import Checkpoint, verify_log
from controller.audit.publisher import CheckpointWitness, current_witness
from controller.audit.witness import (
    WITNESS_FORMAT,
    WitnessError,
    parse_witness,
    witness_dict,
    witness_payload,
)
from controller.exports.manifest import ExportInfo, build_manifest
from controller.fleet.broker import (
    AUDIT_WITNESS_TOPIC,
    CONTROLLER_USER,
    BrokerError,
    acl_text,
    operator_account,
)
from tests.unit.test_audit_chain import PUB, build


def test_payload_round_trips_and_is_canonical() -> None:
    _entries, cps = build(8)
    payload = witness_payload(cps[-1])
    assert parse_witness(payload) == cps[-1]
    doc = json.loads(payload)
    assert doc["format"] == WITNESS_FORMAT and doc["seq"] == 8
    assert payload == witness_payload(parse_witness(payload))  # byte-stable


def test_a_saved_anchor_and_an_export_manifest_are_witnesses_too() -> None:
    _entries, cps = build(8)
    assert parse_witness(json.dumps(asdict(cps[0])).encode()) == cps[0]  # --save-anchor file
    info = ExportInfo(
        "e", "cam1", "a", 0, 1, "g", ("g",), "", "", "p", "u", "o", 0, witness_dict(cps[1])
    )
    manifest = build_manifest(info, [], "kid")
    assert parse_witness(manifest) == cps[1]
    old = build_manifest(replace(info, audit_checkpoint=None), [], "kid")
    assert b"audit_checkpoint" not in old
    with pytest.raises(WitnessError, match="no audit checkpoint"):
        parse_witness(old)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"format": "other/1"}', "unknown witness format"),
        (b'{"seq": "7"}', "'seq'"),
        (b'{"seq": true, "at_us": 1, "prev_checkpoint_seq": 0}', "'seq'"),
        (
            b'{"seq": 0, "at_us": 1, "prev_checkpoint_seq": 0, "hash": "ab", "key_id": "cd",'
            b' "signature": "ef"}',
            "seq < 1",
        ),
        (
            b'{"seq": 3, "at_us": 1, "prev_checkpoint_seq": 0, "hash": "zz", "key_id": "cd",'
            b' "signature": "ef"}',
            "not hexadecimal",
        ),
        (
            b'{"seq": 3, "at_us": 1, "prev_checkpoint_seq": 0, "hash": "ab", "key_id": "cd"}',
            "'signature'",
        ),
    ],
)
def test_malformed_witnesses_are_refused_with_the_reason(data: bytes, why: str) -> None:
    with pytest.raises(WitnessError, match=why):
        parse_witness(data)


def test_a_cut_tail_verifies_alone_but_not_against_a_witness() -> None:
    entries, cps = build(20, every=4)
    witness = parse_witness(witness_payload(cps[-1]))  # seq 20, published before the cut
    # An attacker with the database deletes entries 13..20 and their checkpoints.
    cut_entries, cut_cps = entries[:12], [c for c in cps if c.seq <= 12]
    assert verify_log(cut_entries, cut_cps, PUB).ok  # undetectable without a witness
    report = verify_log(cut_entries, cut_cps, PUB, witness)
    assert not report.ok
    assert any(
        "anchor checkpoint at entry 20 is no longer in the log" in p for p in report.problems
    )
    assert verify_log(entries, cps, PUB, witness).ok  # the intact log contains it


def test_a_forged_witness_is_not_trusted() -> None:
    entries, cps = build(8)
    other = Ed25519PrivateKey.generate()
    forged = replace(cps[-1], signature=other.sign(b"x").hex())
    report = verify_log(entries, cps, PUB, forged)
    assert any("signature is invalid" in p for p in report.problems)


class FakeAudit:
    """The two AuditLog calls the publisher makes, over in-memory checkpoints."""

    def __init__(self, grown: list[Checkpoint | None], newest: Checkpoint | None) -> None:
        self.grown = grown
        self.newest = newest

    def checkpoint(self) -> Checkpoint | None:
        made = self.grown.pop(0) if self.grown else None
        if made is not None:
            self.newest = made
        return made

    def latest_checkpoint(self) -> Checkpoint | None:
        return self.newest


def test_the_publisher_signs_when_grown_and_republishes_the_newest() -> None:
    _entries, cps = build(12)
    sent: list[tuple[str, bytes]] = []

    def publish(topic: str, payload: bytes) -> bool:
        sent.append((topic, payload))
        return True

    audit = FakeAudit([cps[1], None], cps[0])
    witness = CheckpointWitness(audit, publish, 60)  # type: ignore[arg-type]
    assert witness.run_once() == cps[1]
    assert witness.run_once() == cps[1]  # nothing new: the same one again (broker restarts)
    assert [t for t, _ in sent] == [AUDIT_WITNESS_TOPIC] * 2
    assert parse_witness(sent[-1][1]) == cps[1] and witness.last_published == cps[1]
    assert current_witness(FakeAudit([], None)) is None  # type: ignore[arg-type]
    assert current_witness(audit) == witness_dict(cps[1])  # type: ignore[arg-type]


def test_an_unconnected_fleet_does_not_count_as_published() -> None:
    _entries, cps = build(4)
    witness = CheckpointWitness(FakeAudit([cps[0]], None), lambda t, p: False, 60)  # type: ignore[arg-type]
    assert witness.run_once() == cps[0] and witness.last_published is None
    with pytest.raises(ValueError):
        CheckpointWitness(FakeAudit([], None), None, 0)  # type: ignore[arg-type]


def _matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (+ one level, # the rest)."""
    pat, top = pattern.split("/"), topic.split("/")
    for i, level in enumerate(pat):
        if level == "#":
            return True
        if i >= len(top) or (level != "+" and level != top[i]):
            return False
    return len(pat) == len(top)


def _rights(acl: str, user: str, topic: str) -> set[str]:
    """Which of read/write `user` has on `topic` under a Mosquitto ACL text."""
    rights: set[str] = set()
    current = None
    for line in acl.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if parts[0] == "user":
            current = parts[1]
        elif parts[0] == "pattern" and _matches(parts[2].replace("%u", user), topic):
            rights |= {"read", "write"} if parts[1] == "readwrite" else {parts[1]}
        elif parts[0] == "topic" and current == user and _matches(parts[2], topic):
            rights |= {"read", "write"} if parts[1] == "readwrite" else {parts[1]}
    return rights


def test_only_controller_accounts_write_the_witness_topic() -> None:
    op = operator_account("alice")
    acl = acl_text(operators=(op,), controllers=("vigil-tool",))
    assert _rights(acl, CONTROLLER_USER, AUDIT_WITNESS_TOPIC) == {"read", "write"}
    assert _rights(acl, "vigil-tool", AUDIT_WITNESS_TOPIC) == {"read", "write"}
    assert _rights(acl, op, AUDIT_WITNESS_TOPIC) == {"read"}
    for device in ("nvr-1", "audit", "checkpoint", "city"):
        assert _rights(acl, device, AUDIT_WITNESS_TOPIC) == set(), device


def test_operators_read_the_fleet_and_write_nothing_of_anyone_elses() -> None:
    op = operator_account("alice")
    acl = acl_text(operators=(op,))
    assert _rights(acl, op, "vigil/v1/c/s/nvr-1/state") == {"read"}
    assert _rights(acl, op, "vigil/v1/c/s/nvr-1/cmd/hold") == {"read"}
    assert _rights(acl, op, "vigil/v1/controller/state") == {"read"}
    assert "write" in _rights(acl, CONTROLLER_USER, "vigil/v1/c/s/nvr-1/cmd/hold")


def test_operator_accounts_live_under_the_reserved_prefix() -> None:
    assert operator_account("alice") == "vigil-op-alice"
    assert operator_account("vigil-op-bob") == "vigil-op-bob"
    with pytest.raises(BrokerError):
        operator_account("a b")


def test_mqtt_tail_shows_witness_checkpoints_and_flags_junk() -> None:
    from controller.fleet.cli import format_message

    _entries, cps = build(4)
    line = format_message(AUDIT_WITNESS_TOPIC, witness_payload(cps[0]), None, True)
    assert line.startswith(AUDIT_WITNESS_TOPIC + " (retained) {") and '"seq":4' in line
    junk = format_message(AUDIT_WITNESS_TOPIC, b"\x00junk", None, False)
    assert junk == f"{AUDIT_WITNESS_TOPIC} MALFORMED the witness is not JSON"


def test_the_checkpoint_interval_is_configured_and_bounded() -> None:
    from controller.config import ConfigError, parse_config

    assert parse_config("", "t").audit.checkpoint_interval_s == 60.0
    assert parse_config("[audit]\ncheckpoint_interval_s = 5", "t").audit.checkpoint_interval_s == 5
    for bad in ("0", "0.1", "-1", "100000"):
        with pytest.raises(ConfigError, match="audit.checkpoint_interval_s"):
            parse_config(f"[audit]\ncheckpoint_interval_s = {bad}", "t")
    with pytest.raises(ConfigError, match="audit"):
        parse_config("[audit]\ninterval = 5", "t")
