"""Attack catalogue: cutting the audit log's tail is caught by the published witness checkpoint.

Against a real `vigil-controller serve` (managed Mosquitto, SQLite): the controller signs a
checkpoint every second ([audit] checkpoint_interval_s) and publishes it retained on
`vigil/v1/city/audit/checkpoint`; an operator account (made by `mqtt-account --operator`)
fetches it. An attacker with database access then deletes the newest entries and their
checkpoints and rewinds the head: the shortened log verifies on its own, but
`verify-audit --witness` / `--witness-broker` fail, naming the missing checkpoint. Devices and
operators can neither overwrite the witness nor (devices) read it.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from controller.audit.chain import Checkpoint
from controller.audit.witness import AUDIT_WITNESS_TOPIC, parse_witness, witness_payload
from controller.fleet.witness_cli import WitnessFetchError, fetch_witness
from controller.grants.model import Operation
from tests.integration.test_attacks_support import MqttDevice, Target
from tests.support import wait_until

NOT_AUTHORIZED = 135  # MQTT 5 PUBACK reason code


def ctl(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def failed_logins(target: Target, n: int) -> None:
    """Audited events (one row each: failed logins that reach the password check)."""
    for _ in range(n):
        r = target.client.post("/api/v1/login", json={"user_id": "wd-op", "password": "nope"})
        assert r.status_code == 401, r.text


def operator(target: Target) -> tuple[str, Path]:
    out = target.root / "auditor.pw"
    made = ctl(
        "mqtt-account", "--data-dir", str(target.data), "--operator", "auditor", "--out", str(out)
    )
    assert made.returncode == 0, made.stderr
    assert "vigil-op-auditor" in made.stdout and "broker reloaded" in made.stdout
    time.sleep(0.3)  # Mosquitto re-reads its password file and ACL on the signal
    return "vigil-op-auditor", out


def witnessed(target: Target, user: str, pw: Path, at_least: int) -> Checkpoint:
    """The broker's witness once it covers entry `at_least`."""
    seen: list[Checkpoint] = []

    def covered() -> bool:
        secret = pw.read_text().strip()
        try:
            payload = fetch_witness("127.0.0.1", target.mqtt_port, user, secret, timeout_s=3)
        except WitnessFetchError:
            return False  # none published yet
        seen.append(parse_witness(payload))
        return seen[-1].seq >= at_least

    wait_until(covered, 30, f"a witness checkpoint covering entry {at_least}", interval=0.5)
    return seen[-1]


def audit_head(target: Target) -> int:
    with sqlite3.connect(target.data / "catalog.db", timeout=10) as db:
        return int(db.execute("SELECT last_seq FROM audit_head").fetchone()[0])


def cut_tail(target: Target, keep: int) -> None:
    """What an attacker with write access to the database does: delete every entry after
    `keep` and every checkpoint over them, and rewind the head so appends continue."""
    with sqlite3.connect(target.data / "catalog.db", timeout=10) as db:
        last_hash = db.execute("SELECT hash FROM audit_entry WHERE seq = ?", (keep,)).fetchone()[0]
        db.execute("DELETE FROM audit_entry WHERE seq > ?", (keep,))
        db.execute("DELETE FROM audit_checkpoint WHERE seq > ?", (keep,))
        last_cp = db.execute("SELECT coalesce(max(seq), 0) FROM audit_checkpoint").fetchone()[0]
        db.execute(
            "UPDATE audit_head SET last_seq = ?, last_hash = ?, last_checkpoint_seq = ?",
            (keep, last_hash, last_cp),
        )


def verify(target: Target, *extra: str) -> subprocess.CompletedProcess[str]:
    return ctl("verify-audit", "--config", str(target.proc.config_path), *extra)


@pytest.fixture
def target(tmp_path: Path) -> Any:
    t = Target(tmp_path, audit={"checkpoint_interval_s": 1.0})
    yield t
    t.close()


def test_a_cut_tail_is_caught_by_the_saved_and_the_published_witness(target: Target) -> None:
    user, pw = operator(target)
    failed_logins(target, 6)
    head = audit_head(target)
    witness = witnessed(target, user, pw, head)
    saved = target.root / "witness.json"
    saved.write_bytes(witness_payload(witness))  # the auditor's own copy
    broker = ["--witness-broker", f"127.0.0.1:{target.mqtt_port}", "--mqtt-username", user]
    broker += ["--mqtt-password-file", str(pw)]
    intact = verify(target, *broker)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert f"witness: checkpoint at entry {witness.seq}" in intact.stdout

    cut_tail(target, keep=witness.seq - 4)
    alone = verify(target)
    assert alone.returncode == 0, alone.stdout  # without a witness the cut is invisible
    with_file = verify(target, "--witness", str(saved))
    assert with_file.returncode == 1
    assert (
        f"the anchor checkpoint at entry {witness.seq} is no longer in the log" in with_file.stdout
    )
    assert "FAILED" in with_file.stdout

    # The running controller notices at its next tick and keeps the last good checkpoint as
    # the published witness, even once new entries get checkpoints of their own.
    failed_logins(target, 2)
    wait_until(lambda: "no longer contains the checkpoint" in target.log_text(), 20, "cut logged")
    time.sleep(1.5)
    assert (
        parse_witness(fetch_witness("127.0.0.1", target.mqtt_port, user, pw.read_text().strip()))
        == witness
    )
    fetched = verify(target, *broker)
    assert fetched.returncode == 1, fetched.stdout
    assert f"the anchor checkpoint at entry {witness.seq} is no longer in the log" in fetched.stdout
    assert target.alive(), target.log_text()[-3000:]


def test_only_the_controller_writes_the_witness_and_devices_cannot_read_it(target: Target) -> None:
    user, pw = operator(target)
    failed_logins(target, 2)
    witness = witnessed(target, user, pw, audit_head(target))
    device = MqttDevice(target.mqtt_port, "nvr-wd", target.device_account("nvr-wd")).connect()
    spy = MqttDevice(target.mqtt_port, user, pw.read_text().strip()).connect()
    received: list[bytes] = []
    reader = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="nvr-cx", protocol=mqtt.MQTTv5)
    reader.username_pw_set("nvr-cx", target.device_account("nvr-cx"))
    reader.on_message = lambda _c, _u, msg: received.append(bytes(msg.payload))
    reader.connect("127.0.0.1", target.mqtt_port)
    reader.loop_start()
    try:
        forged = witness_payload(Checkpoint(1, "00" * 32, 1, 0, witness.key_id, "00" * 64))
        for client in (device, spy):
            info = client.publish(AUDIT_WITNESS_TOPIC, forged, retain=True)
            info.wait_for_publish(5)
            wait_until(lambda c=client, m=info.mid: m in c.acks, 5, "PUBACK")  # type: ignore[misc]
            assert client.acks[info.mid] == NOT_AUTHORIZED
        wait_until(reader.is_connected, 10, "device reader connected")
        reader.subscribe(AUDIT_WITNESS_TOPIC, qos=1)
        time.sleep(2.5)  # at least two witness publications pass meanwhile
        assert received == []
        now = parse_witness(
            fetch_witness("127.0.0.1", target.mqtt_port, user, pw.read_text().strip())
        )
        assert now.seq >= witness.seq and now.key_id == witness.key_id
        assert (
            verify(
                target,
                "--witness-broker",
                f"127.0.0.1:{target.mqtt_port}",
                "--mqtt-username",
                user,
                "--mqtt-password-file",
                str(pw),
            ).returncode
            == 0
        )
    finally:
        reader.disconnect()
        reader.loop_stop()
        device.close()
        spy.close()
    assert target.alive(), target.log_text()[-3000:]


def test_verify_audit_refuses_the_controller_account_and_a_missing_witness(target: Target) -> None:
    secret = target.root / "ctl.pw"
    secret.write_text("whatever\n")
    bad = verify(
        target,
        "--witness-broker",
        f"127.0.0.1:{target.mqtt_port}",
        "--mqtt-username",
        "vigil-controller",
        "--mqtt-password-file",
        str(secret),
    )
    assert bad.returncode == 2 and "operator account" in bad.stderr
    junk = target.root / "junk.json"
    junk.write_text('{"seq": "x"}')
    bad = verify(target, "--witness", str(junk))
    assert bad.returncode == 2 and "'seq'" in bad.stderr
    tail = ctl(
        "mqtt-tail",
        "--port",
        str(target.mqtt_port),
        "--username",
        "vigil-controller",
        "--password-file",
        str(secret),
        "--count",
        "1",
    )
    assert tail.returncode == 2 and "operator account" in tail.stderr
    with pytest.raises(WitnessFetchError, match="refused"):
        fetch_witness("127.0.0.1", target.mqtt_port, "vigil-op-nobody", "wrong", timeout_s=3)
    assert target.alive()


def test_every_export_manifest_is_a_witness_of_the_audit_log(tmp_path: Path) -> None:
    """The export's recipient holds the checkpoint current at export time: a later cut below
    it fails `verify-audit --witness manifest.json`."""
    import tarfile

    from tests.integration.test_export import SEG_US, T0, World

    world = World(tmp_path)
    try:
        world.add_footage("cam-01", T0, 6)
        token = world.mint({Operation.DOWNLOAD})
        path = world.export(token, T0, T0 + 3 * SEG_US, tmp_path / "out")
        with tarfile.open(path) as tar:
            member = tar.extractfile("manifest.json")
            assert member is not None
            manifest = member.read()
        kept = parse_witness(manifest)
        assert kept == world.audit.latest_checkpoint()  # signed at export time
        assert kept.seq == max(e.seq for e in world.audit.entries()) - 1  # all but the export's
        witness = tmp_path / "manifest.json"
        witness.write_bytes(manifest)
        data = ["--data-dir", str(world.data)]
        intact = ctl("verify-audit", *data, "--witness", str(witness))
        assert intact.returncode == 0, intact.stdout + intact.stderr
        with sqlite3.connect(world.data / "catalog.db", timeout=10) as db:
            db.execute("DELETE FROM audit_entry WHERE seq >= ?", (kept.seq,))
            db.execute("DELETE FROM audit_checkpoint WHERE seq >= ?", (kept.seq,))
        assert ctl("verify-audit", *data).returncode == 0  # the cut alone is invisible
        cut = ctl("verify-audit", *data, "--witness", str(witness))
        assert cut.returncode == 1
        assert f"anchor checkpoint at entry {kept.seq} is no longer in the log" in cut.stdout
    finally:
        world.engine.dispose()
