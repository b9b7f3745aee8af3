"""Helpers for the attack catalogue (tests/integration/test_attacks_*.py; no tests in here).

`Target`: a real `vigil-controller serve` process (HTTP API, managed Mosquitto, SQLite, local
store) with two devices in different counties, users in three organisations and the sharing
keys, as the black-box attack on issue 10 saw it. Each attack test asserts the refusal, that
nothing changed (`Target.snapshot`: catalog and grant rows, stored files, the published
revocation list), that the audit chain verifies, and that every process stayed alive.
"""

from __future__ import annotations

import secrets
import sqlite3
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from controller.audit.chain import verify_log
from controller.audit.log import iter_entries, read_checkpoints
from controller.catalog import make_engine
from controller.clock import SystemClock
from controller.fleet.broker import add_account, signal_reload
from controller.grants.keys import ensure_keys, load_keys
from controller.grants.policy import default_policy
from controller.users.store import create_user
from tests.integration.controller_proc import (
    ControllerProcess,
    database_url,
    prepare_data_dir,
    register,
)
from tests.support import free_port, wait_until

PASSWORD = "correct horse battery"
SITE = "v001"
# device -> (county, camera)
DEVICES = {"nvr-wd": ("wudu", "wd-cam"), "nvr-cx": ("chengxian", "cx-cam")}
# user -> (org, role)
USERS = {
    "admin-1": ("city", "admin"),
    "cx-admin": ("chengxian", "admin"),
    "wd-admin": ("wudu", "admin"),
    "officer-1": ("chengxian", "operator"),
    "wd-op": ("wudu", "operator"),
}
TABLES = (
    "device",
    "camera",
    "segment",
    "user_account",
    "grant_revocation",
    "grant_seen",
    "grant_use",
)


@dataclass(frozen=True)
class Snapshot:
    rows: dict[str, int]
    files: dict[str, int]
    revoked: frozenset[str]
    hashes: dict[str, str]


class Target:
    """The controller under attack; `close()` stops it by PID."""

    def __init__(self, root: Path, *, fresh: bool = True, **sections: Any) -> None:
        """Set up `root/ctl` (unless `fresh` is False: restart on what is there) and start."""
        self.root = root
        self.data = root / "ctl"
        if fresh:
            prepare_data_dir(self.data)
            ensure_keys(self.data)
            for device, (county, camera) in DEVICES.items():
                register(self.data, device, [camera], county=county, site=SITE)
            engine = make_engine(database_url(self.data))
            try:
                for user, (org, role) in USERS.items():
                    create_user(
                        engine, SystemClock(), user, org, role, PASSWORD, policy=default_policy()
                    )
            finally:
                engine.dispose()
        self.http_port = free_port()
        self.mqtt_port = free_port()
        http: dict[str, Any] = {"enabled": True, "listen": f"127.0.0.1:{self.http_port}"}
        http.update(sections.pop("http", {}))
        self.proc = ControllerProcess(
            self.data,
            root,
            http=http,
            mqtt={"mode": "managed", "port": self.mqtt_port},
            **sections,
        )
        self.proc.start(timeout=60)
        assert self.proc.proc is not None
        self.proc.proc.wait_port(self.http_port, timeout=60)
        self.tls = bool(http.get("tls"))
        self.base_url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.http_port}"
        self.verify = (
            ssl.create_default_context(cafile=str(self.data / "pki" / "ca.crt"))
            if self.tls
            else True
        )
        self.client = httpx.Client(base_url=self.base_url, timeout=30, verify=self.verify)
        self._sessions: dict[str, str] = {}
        self._broker_pid = int((self.data / "mosquitto" / "mosquitto.pid").read_text().strip())

    def close(self) -> None:
        self.client.close()
        self.proc.stop()

    # --- people and devices -------------------------------------------------------------------

    def login(self, user: str) -> str:
        if user not in self._sessions:
            r = self.client.post("/api/v1/login", json={"user_id": user, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self._sessions[user] = r.json()["token"]
        return self._sessions[user]

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.login(user)}"}

    def device_account(self, device: str) -> str:
        """What `vigil-controller mqtt-account` does: add the account, SIGHUP the broker."""
        password = secrets.token_hex(12)
        broker_dir = self.data / "mosquitto"
        add_account(broker_dir / "passwd", device, password)
        assert signal_reload(broker_dir)
        time.sleep(0.3)  # Mosquitto re-reads its password file on the signal
        return password

    # --- what must not change ---------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data / 'catalog.db'}?mode=ro", uri=True, timeout=10)

    def audit_count(self) -> int:
        with self._db() as db:
            return int(db.execute("SELECT count(*) FROM audit_entry").fetchone()[0])

    def audit_rows(self, action: str) -> list[tuple[str, str, str, str]]:
        """(actor_user, outcome, reason, detail) of `action`'s entries, oldest first."""
        with self._db() as db:
            return [
                (str(a), str(o), str(r), str(d))
                for a, o, r, d in db.execute(
                    "SELECT actor_user, outcome, reason, detail FROM audit_entry "
                    "WHERE action = ? ORDER BY seq",
                    (action,),
                )
            ]

    def password_hash(self, user: str) -> str:
        with self._db() as db:
            row = db.execute(
                "SELECT password_hash FROM user_account WHERE user_id = ?", (user,)
            ).fetchone()
        return str(row[0])

    def snapshot(self) -> Snapshot:
        with self._db() as db:
            existing = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            rows = {
                t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in TABLES
                if t in existing
            }
            hashes = {
                str(u): str(h)
                for u, h in db.execute("SELECT user_id, password_hash FROM user_account")
            }
        files = {
            str(p.relative_to(self.data)): p.stat().st_size
            for sub in ("objects", "keys", "pki", "staging")
            if (self.data / sub).exists()
            for p in (self.data / sub).rglob("*")
            if p.is_file()
        }
        return Snapshot(rows, files, self.revoked(), hashes)

    def revoked(self) -> frozenset[str]:
        from controller.grants.codec import anchors_from
        from controller.grants.revocation import accept_revocation_list

        r = self.client.get("/api/v1/revocations")
        assert r.status_code == 200, r.text
        keys = load_keys(self.data)
        view = accept_revocation_list(
            r.content, anchors_from([keys.root_public]), None, SystemClock().now_us()
        )
        return view.revoked

    def audit_verifies(self) -> bool:
        engine = make_engine(database_url(self.data), create=False)
        try:
            public = load_keys(self.data).evidence_public
            report = verify_log(iter_entries(engine), read_checkpoints(engine), public, None)
        finally:
            engine.dispose()
        return report.ok

    def alive(self) -> bool:
        """The controller process and its managed broker both still run."""
        try:
            import os

            os.kill(self._broker_pid, 0)
            broker = True
        except OSError:
            broker = False
        return self.proc.alive() and broker

    def log_text(self) -> str:
        return self.proc.log_path.read_text(errors="replace")


def assert_unchanged(target: Target, before: Snapshot) -> None:
    """Nothing changed, the audit chain verifies and every process is alive."""
    assert target.snapshot() == before
    assert target.audit_verifies()
    assert target.alive(), target.log_text()[-3000:]


class MqttDevice:
    """A bare paho client logged in with a device account; counts its disconnects."""

    def __init__(
        self,
        port: int,
        username: str,
        password: str,
        client_id: str | None = None,
        protocol: MQTTProtocolVersion = mqtt.MQTTv5,
    ) -> None:
        self.port = port
        self.disconnects = 0
        self.connects = 0
        self.acks: dict[int, int] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or username, protocol=protocol
        )
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            with self._lock:
                self.connects += 1

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        with self._lock:
            self.disconnects += 1

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        with self._lock:
            self.acks[mid] = rc.value

    def connect(self) -> MqttDevice:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, "device connected")
        return self

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1, retain=retain)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def device_topic(device: str, leaf: str) -> str:
    county, _camera = DEVICES[device]
    return f"vigil/v1/{county}/{SITE}/{device}/{leaf}"


def free_ports() -> tuple[int, int]:
    return free_port(), free_port()
