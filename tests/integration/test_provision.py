"""vigil-provision: an installer builds a bundle from the controller's outputs and verifies it;
every wrong input is named, nothing half-written is left ready."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from provisioning.__main__ import main
from provisioning.bundle import verify_bundle


def ctl(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "controller", *args], check=True, capture_output=True)


def controller_outputs(tmp: Path, device: str = "nvr-1") -> Path:
    data = tmp / "ctl"
    ctl("init", "--data-dir", str(data))
    ctl("issue-cert", "--data-dir", str(data), "--device-id", device, "--out", str(tmp / "pki"))
    ctl("mqtt-account", "--data-dir", str(data), "--device-id", device, "--out", str(tmp / "pw"))
    return data


def bundle_args(tmp: Path, out: Path, device: str = "nvr-1") -> list[str]:
    return [
        "bundle",
        "--device-id",
        device,
        "--county",
        "wudu",
        "--site",
        "v001",
        "--camera",
        "cam-1=rtsp://admin:secret@192.0.2.10/Streaming/1",
        "--controller",
        "city.example:7443",
        "--pki-dir",
        str(tmp / "pki"),
        "--mqtt-host",
        "city.example",
        "--mqtt-password-file",
        str(tmp / "pw"),
        "--out",
        str(out),
    ]


def test_bundle_then_verify_is_ready(tmp_path: Path, capsys) -> None:
    controller_outputs(tmp_path)
    out = tmp_path / "bundle"
    assert main(bundle_args(tmp_path, out)) == 0
    assert (out / "pki" / "nvr-1.key").stat().st_mode & 0o777 == 0o600
    assert (out / "mqtt.password").stat().st_mode & 0o777 == 0o600
    assert verify_bundle(out) == []
    assert main(["verify", str(out)]) == 0
    assert "ready" in capsys.readouterr().out


def test_verify_names_every_problem(tmp_path: Path, capsys) -> None:
    data = controller_outputs(tmp_path)
    out = tmp_path / "bundle"
    assert main(bundle_args(tmp_path, out)) == 0
    # A certificate for another device swapped in: CN mismatch and key mismatch are named.
    ctl("issue-cert", "--data-dir", str(data), "--device-id", "nvr-2", "--out", str(tmp_path / "o"))
    (out / "pki" / "nvr-1.crt").write_bytes((tmp_path / "o" / "nvr-2.crt").read_bytes())
    problems = verify_bundle(out)
    assert any("CN is 'nvr-2'" in p for p in problems)
    assert any("private key does not match" in p for p in problems)
    assert main(["verify", str(out)]) == 1
    assert "PROBLEM" in capsys.readouterr().out


def test_expired_and_foreign_ca_certificates_are_refused(tmp_path: Path) -> None:
    controller_outputs(tmp_path)
    out = tmp_path / "bundle"
    assert main(bundle_args(tmp_path, out)) == 0
    later = datetime.now(UTC) + timedelta(days=400)
    assert any("expired" in p for p in verify_bundle(out, now=later))
    other = tmp_path / "other"
    ctl("init", "--data-dir", str(other))
    (out / "pki" / "ca.crt").write_bytes((other / "pki" / "ca.crt").read_bytes())
    problems = verify_bundle(out)
    assert any(
        "not issued by this CA" in p or "does not verify against the CA" in p for p in problems
    )


def test_bad_inputs_are_refused_and_write_nothing(tmp_path: Path, capsys) -> None:
    controller_outputs(tmp_path)
    missing = tmp_path / "nope"
    args = bundle_args(tmp_path, missing)
    args[args.index("--pki-dir") + 1] = str(tmp_path / "empty")
    assert main(args) == 2
    assert "missing input files" in capsys.readouterr().err
    assert not missing.exists() or not any(missing.iterdir())
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("keep")
    assert main(bundle_args(tmp_path, used)) == 2
    assert (used / "x").read_text() == "keep"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "agent.toml").write_text("device_id = \n")
    assert any("not valid TOML" in p for p in verify_bundle(broken))
