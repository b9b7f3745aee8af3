"""vigil-provision against a real controller (HTTP API, enrollment listener, SQLite): an
installer scoped to one county registers devices and gets tokens, builds bundles from the
workspace with no link, the device checks the bundle, installs it into a directory tree
standing for its root and enrolls with the token; tampered bundles, bundles for another
site and installers outside their county are refused. Prints the time of a 100-device
offline batch.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.assembly import Controller, Parts, build_controller
from controller.clock import SystemClock
from controller.enrollment.siterules import Site
from controller.enrollment.store import EnrollmentStore
from controller.grants.keys import ensure_keys
from controller.users.store import create_user
from edge_agent.config import load_config
from edge_agent.enrollment import Enroller
from provisioning.__main__ import main
from provisioning.workspace import Workspace
from tests.integration.controller_proc import make_config, prepare_data_dir

PASSWORD = "correct horse battery"


@dataclass
class Env:
    tmp: Path
    ctl: Controller
    ws: Path
    pw: Path

    @property
    def enroll_port(self) -> int:
        assert self.ctl.enrollment is not None and self.ctl.enrollment.listener is not None
        return self.ctl.enrollment.listener.port

    def run(self, *argv: str, user_ws: Path | None = None) -> int:
        return main(["-w", str(user_ws or self.ws), "--password-file", str(self.pw), *argv])

    def init(self, ws: Path, user: str, install_dir: str = "/etc/vigil-agent") -> None:
        assert self.ctl.http is not None
        argv = ["init", "--api", self.ctl.http.base_url, "--user", user, "--ca-cert",
                str(self.tmp / "ctl" / "pki" / "ca.crt"), "--controller",
                f"127.0.0.1:{self.ctl.grpc_port}", "--enroll", f"127.0.0.1:{self.enroll_port}",
                "--install-dir", install_dir]  # fmt: skip
        assert main(["-w", str(ws), *argv]) == 0


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    ensure_keys(data)
    config = make_config(
        data,
        http={"enabled": True, "listen": "127.0.0.1:0"},
        enrollment={"listen": "127.0.0.1:0", "revocation_refresh_s": 0.2, "peer_burst": 50},
    )
    ctl = build_controller(config, SystemClock(), Parts(http=True))
    for user, org, role in [("inst-wd", "wudu", "installer"), ("inst-cx", "chengxian", "installer"),
                            ("viewer-wd", "wudu", "viewer")]:  # fmt: skip
        create_user(ctl.engine, ctl.clock, user, org, role, PASSWORD)
    ctl.start()
    store = EnrollmentStore(ctl.engine)
    for site_id in ("v001", "v002", "v9", "v1", "v5"):  # the county's list, registered
        store.save_site(Site("wudu", site_id, f"村{site_id}"), "test", 0)
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    e = Env(tmp_path, ctl, tmp_path / "ws", pw)
    e.init(e.ws, "inst-wd")
    try:
        yield e
    finally:
        ctl.stop(1.0)


CAM = "cam-1=rtsp://admin:s3cr%40t@192.0.2.10:554/Streaming/1"


def test_device_add_bundle_install_and_enroll(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    add = ["device", "add", "--device-id", "nvr-wd-1", "--county", "wudu", "--site", "v001"]
    assert env.run(*add, "--camera", CAM, "--camera", "cam-2=nvr:/mnt/nvr/ch2") == 0
    record = env.ws / "devices" / "nvr-wd-1.json"
    assert record.stat().st_mode & 0o777 == 0o600
    token = json.loads(record.read_text())["token"]
    out = capsys.readouterr().out
    assert token not in out and "s3cr" not in out  # only the fingerprint is shown
    bundle = env.tmp / "bundle"
    assert env.run("bundle", "nvr-wd-1", "--out", str(bundle), "--tar") == 0
    toml = (bundle / "agent.toml").read_text()
    assert "s3cr" not in toml and "admin" not in toml and token not in toml
    for secret in ("cameras.secret", "enroll.token"):
        assert (bundle / secret).stat().st_mode & 0o777 == 0o600
    assert not list(bundle.rglob("*.key"))  # no private key travels
    assert (bundle / "label.png").read_bytes()[:4] == b"\x89PNG"
    pdf = (bundle / "label.pdf").read_bytes()  # in the manifest, checked
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert b"/Count 1" in pdf and b"NotoSansCJKSC" in pdf  # the SC face, subset, embedded
    assert b"/MediaBox [0 0 175.75 283.46]" in pdf  # 62 x 100 mm
    assert token.encode() not in pdf
    with tarfile.open(env.tmp / "bundle.tar.gz") as tar:
        assert "bundle/manifest.json" in tar.getnames()
    assert env.run("check-bundle", str(bundle), "--site", "v001") == 0
    # install.sh into a fresh tree standing for the device's root (no wheelhouse here: the
    # wheelhouse install is exercised by test_wheelhouse_install_offline)
    root = env.tmp / "device"
    install = ["sh", str(bundle / "install.sh"), "--site", "v001", "--root", str(root)]
    done = subprocess.run(install, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    etc = root / "etc" / "vigil-agent"
    # The agent on the device sees /etc and /var/lib under its root: remap them here.
    text = (etc / "agent.toml").read_text()
    for top in ("/etc/vigil-agent", "/var/lib/vigil-agent"):
        text = text.replace(f'"{top}', f'"{root}{top}')
    (etc / "agent.toml").write_text(text)
    config = load_config(etc / "agent.toml", env={})
    assert config.cameras[0].url == "rtsp://admin:s3cr%40t@192.0.2.10:554/Streaming/1"
    assert (etc / "enroll.token").stat().st_mode & 0o777 == 0o600
    for unit in ("vigil-agent.service", "vigil-agent-renew.service", "vigil-agent-renew.timer"):
        assert (root / "etc" / "systemd" / "system" / unit).exists()
    enroller = Enroller(config, f"127.0.0.1:{env.enroll_port}", etc / "enroll.token",
                        SystemClock().now_us)  # fmt: skip
    assert enroller.run() == "enrolled"
    capsys.readouterr()
    assert env.run("verify", "nvr-wd-1", "--lang", "en") == 1  # no camera/MQTT in this test
    table = capsys.readouterr().out
    assert "certificate enrolled | PASS" in table and "Not accepted" in table
    assert env.run("verify", "nvr-wd-1") == 1
    assert "已注册证书 | 通过" in capsys.readouterr().out
    assert env.run("device", "retire", "nvr-wd-1") == 0
    capsys.readouterr()
    env.run("verify", "nvr-wd-1", "--lang", "en")
    assert "certificate enrolled | FAIL" in capsys.readouterr().out


def test_tampered_or_foreign_bundles_install_nothing(env: Env) -> None:
    add = ["device", "add", "--device-id", "nvr-wd-2", "--county", "wudu", "--site", "v002"]
    assert env.run(*add, "--camera", CAM) == 0
    bundle = env.tmp / "b2"
    assert env.run("bundle", "nvr-wd-2", "--out", str(bundle), "--no-label") == 0
    assert env.run("check-bundle", str(bundle), "--site", "v001") == 1  # another site
    agent = bundle / "agent.toml"
    agent.write_text(agent.read_text().replace("127.0.0.1", "203.0.113.66"))
    assert env.run("check-bundle", str(bundle), "--site", "v002") == 1
    root2 = str(env.tmp / "root2")
    install = ["sh", str(bundle / "install.sh"), "--site", "v002", "--root", root2]
    done = subprocess.run(install, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "changed file: agent.toml" in done.stdout
    assert not (env.tmp / "root2").exists()


def test_installers_act_only_in_their_county(env: Env) -> None:
    cx = env.tmp / "ws-cx"
    env.init(cx, "inst-cx")
    add = ["device", "add", "--device-id", "nvr-wd-9", "--county", "wudu", "--site", "v9"]
    assert env.run(*add, user_ws=cx) == 1  # a chengxian installer, a wudu device
    assert env.ctl.catalog.device("nvr-wd-9") is None
    assert env.run(*add) == 0
    assert env.run("device", "retire", "nvr-wd-9", user_ws=cx) == 1
    viewer = env.tmp / "ws-v"
    env.init(viewer, "viewer-wd")
    assert env.run("device", "add", "--device-id", "x1", "--county", "wudu", "--site", "v1",
                   user_ws=viewer) == 1  # fmt: skip
    assert env.ctl.catalog.device("x1") is None


def test_batch_reports_per_row_and_builds_100_bundles_offline(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["device_id,county,site,kind,cameras"]
    rows += [f"nvr-b{i:03d},wudu,v{i:03d},nvr,cam-b{i:03d}=rtsp://u:p@192.0.2.{i % 250 + 1}/s1"
             for i in range(100)]  # fmt: skip
    rows += ["bad row,wudu,v1,nvr,", "nvr-c1,wudu,v1,toaster,"]
    store = EnrollmentStore(env.ctl.engine)
    for i in range(100):
        store.save_site(Site("wudu", f"v{i:03d}", f"村{i}"), "test", 0)
    csv = env.tmp / "day.csv"
    csv.write_text("\n".join(rows) + "\n")
    assert env.run("batch", str(csv)) == 1  # two bad rows
    report = capsys.readouterr().out
    assert "line 102\tinvalid\tinvalid device id" in report
    assert "line 103\tinvalid\tkind must be" in report
    assert report.count("\tregistered\t") == 100
    wheelhouse = env.tmp / "wh"
    for arch in ("x86_64", "aarch64"):
        (wheelhouse / arch).mkdir(parents=True)
        (wheelhouse / arch / "vigil-0.1-py3-none-any.whl").write_bytes(b"x" * 1_000_000)
    good = env.tmp / "good.csv"
    good.write_text("\n".join(rows[:101]) + "\n")
    env.ctl.stop(1.0)  # no link from here on
    t0 = time.monotonic()
    # --no-label: the PDF's font load alone is seconds (labels: the bundle test above)
    assert env.run("batch", str(good), "--offline", "--out", str(env.tmp / "out"),
                   "--wheelhouse", str(wheelhouse), "--no-label") == 0  # fmt: skip
    elapsed = time.monotonic() - t0
    assert capsys.readouterr().out.count("\tbundled\t") == 100
    assert main(["check-bundle", str(env.tmp / "out" / "nvr-b042"), "--site", "v042"]) == 0
    print(f"\n100-device offline batch (no labels, hard-linked 2 MB wheelhouse): {elapsed:.2f} s")


def test_discover_finds_emulated_onvif_cameras_and_adds_them(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    from vigil_camsim.onvif import OnvifEmulator, cameras_from

    cams = cameras_from("rtsp://127.0.0.1:8554", 2, "h264", ["2=h265"], (704, 576), fps=15)
    emulator = OnvifEmulator(cams)
    emulator.start()
    try:
        add = ["device", "add", "--device-id", "nvr-wd-5", "--county", "wudu", "--site", "v5"]
        assert env.run(*add) == 0
        capsys.readouterr()
        pw = env.tmp / "campw"
        pw.write_text("cam-secret\n")
        argv = ["discover", "--timeout", "2", "--camera-user", "admin",
                "--camera-password-file", str(pw), "--device-id", "nvr-wd-5"]  # fmt: skip
        assert env.run(*argv) == 0
        out = capsys.readouterr().out
        assert "cam-1\trtsp://127.0.0.1:8554/cam/1\th264\t704x576\t15fps\tok" in out
        assert "cam-2\trtsp://127.0.0.1:8554/cam/2\th265\t704x576\t15fps\tok" in out
        # the rate the encoders are set to is what verify will expect
        record = Workspace(env.ws).load("nvr-wd-5")
        assert {c.camera_id: c.fps for c in record.spec.cameras} == {"cam-1": 15.0, "cam-2": 15.0}
        assert "cam-secret" not in out
        assert {c.camera_id for c in env.ctl.catalog.cameras() if c.device_id == "nvr-wd-5"} == {
            "cam-1",
            "cam-2",
        }
        # A camera that does not answer ONVIF is reported, not dropped.
        dead = f"http://127.0.0.1:{emulator.port}/onvif/cam-9/device_service"
        assert env.run("discover", "--xaddr", dead) == 1
        assert "HTTP 404" in capsys.readouterr().out
    finally:
        emulator.stop()


def test_sites_from_the_county_list_and_device_codes(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """`site add` / `site list`; a device only on a registered site of its county, with a GB/T
    28181 code of that county that no other device holds; bad input changes nothing."""
    site = ["site", "add", "--county", "wudu", "--site", "sm01", "--name", "石门村",
            "--township", "城关镇", "--lat", "33.39", "--lon", "104.93"]  # fmt: skip
    assert env.run(*site) == 0
    assert "石门村" in capsys.readouterr().out
    code = "62120200001180000007"  # wudu (621202), NVR (118)
    add = ["device", "add", "--device-id", "nvr-sm-1", "--county", "wudu", "--site", "sm01",
           "--gb-code", code, "--camera", CAM]  # fmt: skip
    assert env.run(*add) == 0
    assert env.run("site", "list", "--county", "wudu") == 0
    listed = capsys.readouterr().out
    assert "sm01\t石门村\t城关镇\tnvr-sm-1" in listed
    assert Workspace(env.ws).site("wudu", "sm01") is not None  # kept for offline labels
    store = EnrollmentStore(env.ctl.engine)
    assert store.device_code("nvr-sm-1") == code

    def refused(*argv: str, user_ws: Path | None = None) -> str:
        assert env.run(*argv, user_ws=user_ws) != 0
        return capsys.readouterr().err

    # Unknown site, another county's code, a camera's code, a taken code, malformed codes.
    other = ["device", "add", "--device-id", "nvr-x", "--county", "wudu"]
    assert "not registered" in refused(*other, "--site", "nowhere")
    assert "not of county wudu" in refused(
        *other, "--site", "sm01", "--gb-code", "62122100001180000001"
    )
    assert "not a front-end main device" in refused(
        *other, "--site", "sm01", "--gb-code", "62120200001320000001"
    )
    assert "nvr-sm-1" in refused(*other, "--site", "sm01", "--gb-code", code)
    assert "20 digits" in refused(*other, "--site", "sm01", "--gb-code", "6212020000118")
    assert env.ctl.catalog.device("nvr-x") is None and store.code_holder(code) == "nvr-sm-1"
    # Bad sites: empty or invisible-character names, half a position, another county, ids.
    bad = ["site", "add", "--county", "wudu", "--site", "sm02"]
    assert "empty" in refused(*bad, "--name", "  ")
    assert "control or invisible" in refused(*bad, "--name", "石门\u200b村")
    assert "both lat and lon" in refused(*bad, "--name", "x", "--lat", "33")
    assert "lat must be" in refused(*bad, "--name", "x", "--lat", "95", "--lon", "1")
    assert "invalid site" in refused("site", "add", "--county", "wudu", "--site", "../x",
                                     "--name", "x")  # fmt: skip
    cx = env.tmp / "ws-cx2"
    env.init(cx, "inst-cx")
    assert "403" in refused(*bad, "--name", "x", user_ws=cx)  # a chengxian installer
    assert "403" in refused("site", "list", "--county", "wudu", user_ws=cx)
    assert store.site("wudu", "sm02") is None
