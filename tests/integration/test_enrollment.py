"""Enrollment end to end in one controller process: the real agent code (edge_agent/enrollment.py)
makes its key, enrolls on the server-authenticated enrollment listener, and then uploads over
mutual TLS with the certificate it got; every bad input is refused with a clear status and
changes nothing; a retired device is refused at the RPC layer within seconds, on every replica
(two controllers on one database).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from controller.catalog import Catalog, make_engine
from controller.clock import SystemClock
from controller.enrollment.operations import Operations
from controller.enrollment.store import EnrollmentStore
from controller.pki import make_csr
from edge_agent.config import AgentConfig
from edge_agent.enrollment import Enroller, EnrollmentFailed, csr_for, read_status
from protos.vigil.v1 import agent_control_pb2, agent_control_pb2_grpc
from tests.integration.controller_proc import (
    DeviceCreds,
    InProcessController,
    Segment,
    database_url,
    device_channel,
    ingest_stub,
    issue_device,
    prepare_data_dir,
    register,
    status,
    upload,
)
from tests.support import free_port, wait_until

SECTIONS = {"enrollment": {"listen": "127.0.0.1:0", "revocation_refresh_s": 0.2, "peer_burst": 30}}


@dataclass
class Env:
    tmp: Path
    data: Path
    ctl: InProcessController
    ops: Operations

    @property
    def enroll_port(self) -> int:
        assert self.ctl.controller is not None and self.ctl.controller.enrollment is not None
        listener = self.ctl.controller.enrollment.listener
        assert listener is not None
        return listener.port

    def agent(self, device: str, root: Path | None = None) -> AgentConfig:
        root = root or self.tmp / f"agent-{device}"
        pki = root / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.data / "pki" / "ca.crt", pki / "ca.crt")
        return AgentConfig.model_validate(
            {
                "device_id": device,
                "data_dir": str(root / "data"),
                "uplink": {
                    "controller": f"127.0.0.1:{self.ctl.port}",
                    "ca_cert": str(pki / "ca.crt"),
                    "client_cert": str(pki / f"{device}.crt"),
                    "client_key": str(pki / f"{device}.key"),
                },
                "mqtt": {"password_file": str(root / "mqtt.password")},
            }
        )

    def token_file(self, device: str, token: str | None = None) -> Path:
        path = self.tmp / f"{device}.token"
        path.write_text((token or self.ops.token(device, "test", 3600).token) + "\n")
        return path

    def enroller(self, config: AgentConfig, token_file: Path | None, **kw: object) -> Enroller:
        return Enroller(
            config, f"127.0.0.1:{self.enroll_port}", token_file, SystemClock().now_us, **kw
        )  # type: ignore[arg-type]

    def enroll_call(self, device: str, token: str, csr: bytes) -> grpc.RpcError:
        ca = (self.data / "pki" / "ca.crt").read_bytes()
        channel = grpc.secure_channel(
            f"127.0.0.1:{self.enroll_port}", grpc.ssl_channel_credentials(ca)
        )
        try:
            stub = agent_control_pb2_grpc.AgentControlStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Enroll(
                    agent_control_pb2.EnrollRequest(device_id=device, token=token, csr_pem=csr),
                    timeout=10,
                )
            return info.value
        finally:
            channel.close()


def _ops(data: Path) -> Operations:
    engine = make_engine(database_url(data))
    clock = SystemClock()
    return Operations(Catalog(engine, clock), EnrollmentStore(engine), clock, _NoAccounts())


class _NoAccounts:
    def grant(self, device_id: str) -> tuple[str, str]:
        return "", ""

    def remove(self, device_id: str) -> None:
        return None


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, "dev1", ["cam1"])
    register(data, "dev2", ["cam2"])
    with InProcessController(data, dict(SECTIONS)) as ctl:
        yield Env(tmp_path, data, ctl, _ops(data))


def _creds(config: AgentConfig) -> DeviceCreds:
    u = config.uplink
    return DeviceCreds(
        config.device_id,
        Path(u.client_cert).read_bytes(),
        Path(u.client_key).read_bytes(),
        Path(u.ca_cert).read_bytes(),
        Path(u.client_cert),
        Path(u.client_key),
        Path(u.ca_cert),
    )


def _upload(port: int, creds: DeviceCreds, camera: str) -> int:
    channel = device_channel(port, creds)
    try:
        return int(upload(ingest_stub(channel), Segment.make(camera, size=10_000)).outcome)
    finally:
        channel.close()


def test_a_device_enrolls_with_its_own_key_and_then_uploads_over_mutual_tls(env: Env) -> None:
    config = env.agent("dev1")
    token_file = env.token_file("dev1")
    assert env.enroller(config, token_file).run() == "enrolled"
    key_path = Path(config.uplink.client_key)
    assert key_path.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(Path(config.uplink.client_cert).read_bytes())
    assert (
        cert.subject.rfc4514_string().endswith("CN=dev1")
        or "CN=dev1" in cert.subject.rfc4514_string()
    )
    assert not token_file.exists()  # spent
    assert read_status(Path(config.data_dir))["state"] == "enrolled"
    assert _upload(env.ctl.port, _creds(config), "cam1") == 1
    # Run again (every start): nothing to do, same certificate.
    before = Path(config.uplink.client_cert).read_bytes()
    assert env.enroller(config, None).run() == "ok"
    assert Path(config.uplink.client_cert).read_bytes() == before


def test_reboot_mid_enrollment_repeats_idempotently_but_a_new_key_needs_a_new_token(
    env: Env,
) -> None:
    config = env.agent("dev1")
    token = env.ops.token("dev1", "test", 3600).token
    assert env.enroller(config, env.token_file("dev1", token)).run() == "enrolled"
    Path(config.uplink.client_cert).unlink()  # the answer was lost in the reboot
    assert env.enroller(config, env.token_file("dev1", token)).run() == "enrolled"
    Path(config.uplink.client_key).unlink()  # reflash: a new key
    Path(config.uplink.client_cert).unlink()
    with pytest.raises(EnrollmentFailed, match="another key"):
        env.enroller(config, env.token_file("dev1", token)).run()
    assert read_status(Path(config.data_dir))["state"] == "refused"
    assert env.enroller(config, env.token_file("dev1")).run() == "enrolled"  # new token


def test_bad_tokens_and_bad_csrs_are_refused_and_change_nothing(env: Env) -> None:
    good = env.ops.token("dev1", "test", 3600).token
    other = env.ops.token("dev2", "test", 3600).token
    csr, _ = make_csr("dev1")
    expired = (
        EnrollmentStore(env.ctl.controller.engine)
        .issue_token(  # type: ignore[union-attr]
            "dev1", "wudu", "village1", "test", SystemClock().now_us() - 7_200_000_000, 3600
        )
        .token
    )
    cases = [
        ("dev1", "no-such-token-000000000000", csr, grpc.StatusCode.PERMISSION_DENIED, "unknown"),
        ("dev1", other, csr, grpc.StatusCode.PERMISSION_DENIED, "not for device"),
        ("dev1", expired, csr, grpc.StatusCode.PERMISSION_DENIED, "expired"),
        ("dev1", good, make_csr("dev2")[0], grpc.StatusCode.INVALID_ARGUMENT, "common name"),
        (
            "dev1",
            good,
            csr_for(ec.generate_private_key(ec.SECP192R1()), "dev1"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "weak key",
        ),
        ("dev1", good, b"not a csr", grpc.StatusCode.INVALID_ARGUMENT, "PEM"),
        (
            "nosuchdev",
            good,
            make_csr("nosuchdev")[0],
            grpc.StatusCode.PERMISSION_DENIED,
            "not registered",
        ),
    ]
    for device, token, body, code, words in cases:
        got, details = status(env.enroll_call(device, token, body))
        assert got == code and words in details, (words, got, details)
    # `expired` was issued after `good`, which cancelled it: the last one given counts.
    fresh = env.ops.token("dev1", "test", 3600).token
    assert env.enroller(env.agent("dev1"), env.token_file("dev1", fresh)).run() == "enrolled"
    # The other device's token was never spent by the attempt above.
    assert env.enroller(env.agent("dev2"), env.token_file("dev2", other)).run() == "enrolled"


def test_the_enrollment_port_serves_nothing_else_and_throttles_guessers(env: Env) -> None:
    ca = (env.data / "pki" / "ca.crt").read_bytes()
    channel = grpc.secure_channel(f"127.0.0.1:{env.enroll_port}", grpc.ssl_channel_credentials(ca))
    stub = agent_control_pb2_grpc.AgentControlStub(channel)
    try:
        with pytest.raises(grpc.RpcError) as info:
            stub.ReportInventory(agent_control_pb2.Inventory(device_id="dev1"), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        codes = []
        for i in range(40):
            request = agent_control_pb2.EnrollRequest(device_id="dev1", token=f"guess-{i:030d}")
            try:
                stub.Enroll(request, timeout=5)
            except grpc.RpcError as exc:
                codes.append(exc.code())
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    finally:
        channel.close()


def test_renewal_uses_the_same_key_and_no_token(env: Env) -> None:
    config = env.agent("dev1")
    env.enroller(config, env.token_file("dev1")).run()
    first = x509.load_pem_x509_certificate(Path(config.uplink.client_cert).read_bytes())
    key_before = Path(config.uplink.client_key).read_bytes()
    later = SystemClock().now_us() + 70 * 86400 * 1_000_000  # past 2/3 of 90 days
    renewer = Enroller(config, f"127.0.0.1:{env.enroll_port}", None, lambda: later)
    assert renewer.run() == "renewed"
    second = x509.load_pem_x509_certificate(Path(config.uplink.client_cert).read_bytes())
    assert second.serial_number != first.serial_number
    assert Path(config.uplink.client_key).read_bytes() == key_before


def test_unreachable_controller_retries_with_backoff_and_says_so(env: Env) -> None:
    config = env.agent("dev1")
    sleeps: list[float] = []
    enroller = Enroller(
        config,
        f"127.0.0.1:{free_port()}",
        env.token_file("dev1"),
        SystemClock().now_us,
        sleep=sleeps.append,
        max_attempts=4,
        timeout_s=2.0,
    )
    with pytest.raises(EnrollmentFailed, match="unreachable after 4 attempts"):
        enroller.run()
    assert len(sleeps) == 3 and sleeps[0] < sleeps[1] < sleeps[2]
    assert read_status(Path(config.data_dir))["state"] == "unreachable"


def test_a_retired_device_is_refused_within_seconds_on_every_replica(env: Env) -> None:
    config = env.agent("dev1")
    env.enroller(config, env.token_file("dev1")).run()
    enrolled = _creds(config)
    by_hand = issue_device(env.data, "dev1", env.tmp / "by-hand")  # an issue-cert one
    other = issue_device(env.data, "dev2", env.tmp / "dev2")
    replica_dir = env.tmp / "replica"
    replica_dir.mkdir()
    shutil.copytree(env.data / "pki", replica_dir / "pki")
    with InProcessController(
        replica_dir, {**SECTIONS, "database_url": database_url(env.data)}
    ) as replica:
        for port in (env.ctl.port, replica.port):
            assert _upload(port, enrolled, "cam1") == 1
            assert _upload(port, by_hand, "cam1") == 1
        t0 = time.monotonic()
        assert env.ops.retire("dev1", "test: stolen") >= 1

        def refused_everywhere() -> bool:
            for port in (env.ctl.port, replica.port):
                for creds in (enrolled, by_hand):
                    try:
                        _upload(port, creds, "cam1")
                        return False
                    except grpc.RpcError as exc:
                        assert status(exc)[0] == grpc.StatusCode.UNAUTHENTICATED
            return True

        wait_until(refused_everywhere, 5.0, "the retired device refused on both replicas")
        elapsed = time.monotonic() - t0
        assert elapsed < 5.0
        for port in (env.ctl.port, replica.port):  # other devices are unaffected
            assert _upload(port, other, "cam2") == 1
    # A retired device cannot enroll again, nor get a token.
    err = env.enroll_call("dev1", "x" * 32, make_csr("dev1")[0])
    assert status(err)[0] == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(Exception, match="retired"):
        env.ops.token("dev1", "test", 3600)


def test_controller_cli_issues_tokens_retires_and_replaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from controller.__main__ import main

    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, "old1", ["camA"])
    base = ["--data-dir", str(data)]
    out = tmp_path / "t" / "old1.token"
    assert main(["device", "token", *base, "--device-id", "old1", "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600 and len(out.read_text().strip()) >= 30
    assert main(["device", "token", *base, "--device-id", "ghost"]) == 1  # not registered
    assert main(["device", "replace", *base, "old1", "new1"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert len(token) >= 30
    ops = _ops(data)
    camera = ops.catalog.camera("camA")
    assert camera is not None and camera.device_id == "new1"  # history stays with the camera
    assert ops.store.retired("old1") and not ops.store.retired("new1")
    assert main(["device", "token", *base, "--device-id", "old1"]) == 1  # retired
    assert main(["device", "retire", *base, "--device-id", "new1"]) == 0


def test_enrollment_grants_the_mqtt_account_and_retirement_takes_it_away(
    tmp_path: Path,
) -> None:
    """Managed Mosquitto: the enrolled device connects with the password it was given; once
    retired it is disconnected and cannot log in again (it can publish nothing)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from controller.assembly import Parts, build_controller
    from tests.integration.controller_proc import make_config

    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, "dev1", ["cam1"])
    port = free_port()
    config = make_config(
        data,
        mqtt={"mode": "managed", "port": port},
        enrollment={"listen": "127.0.0.1:0", "revocation_refresh_s": 0.2},
    )
    ctl = build_controller(config, SystemClock(), Parts(fleet=True))
    ctl.start()
    try:
        env = Env(tmp_path, data, InProcessController(data, controller=ctl), _ops(data))
        agent = env.agent("dev1")
        assert env.enroller(agent, env.token_file("dev1")).run() == "enrolled"
        pw_file = Path(agent.mqtt.password_file)
        assert pw_file.stat().st_mode & 0o777 == 0o600
        password = pw_file.read_text().strip()

        def client() -> tuple[mqtt.Client, list[str]]:
            events: list[str] = []
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dev1", protocol=mqtt.MQTTv5)
            c.username_pw_set("dev1", password)
            c.on_connect = lambda _c, _u, _f, rc, _p: events.append(f"connect {rc}")
            c.on_disconnect = lambda _c, _u, _f, rc, _p: events.append(f"disconnect {rc}")
            c.connect("127.0.0.1", port)
            c.loop_start()
            return c, events

        c, events = client()
        wait_until(c.is_connected, 10, "the enrolled device on MQTT with its own account")
        info = c.publish("vigil/v1/wudu/village1/dev1/state", b"x", qos=1)
        info.wait_for_publish(5)
        Operations.for_config(config, ctl.catalog, ctl.clock).retire("dev1", "test")
        wait_until(lambda: not c.is_connected(), 10, "the retired device disconnected")
        c.loop_stop()
        c.disconnect()
        again, events = client()
        wait_until(lambda: bool(events), 10, "an answer to the retired device's login")
        assert not again.is_connected() and "connect Success" not in events[0], events
        again.loop_stop()
    finally:
        ctl.stop(1.0)
