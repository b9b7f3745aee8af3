"""The flashable bundle for one device, built from the workspace alone (no link needed).

    agent.toml            the agent's configuration: no secret in it (mode 0644)
    cameras.secret        RTSP credentials, camera by camera (0600; edge_agent/credentials.py)
    enroll.token          the single-use enrollment token (0600; deleted by the agent once used)
    pki/ca.crt            the city CA (the device checks the controller against it)
    vigil-agent.service   systemd unit: `vigil-agent enroll` before every start, then `run`
    vigil-agent-renew.*   a daily timer renewing the certificate when due (restarts the agent)
    install.sh            checks the manifest, installs the wheelhouse offline, places the files
    verify_manifest.py    the manifest check (stdlib only)
    wheelhouse/ARCH/      the agent and its dependencies as wheels (when given)
    label.png, label.txt  QR code (segno) with device id, site and token fingerprint
    label.pdf             the printable label, zh-CN first (label.py; `bundle` only: a batch
                          gets one labels.pdf for the day)
    manifest.json         SHA-256 of every other file, device id, site, county

No private key is in it: the device makes its own at first boot. Written as a directory, a
`.tar.gz`, or onto a mounted SD card (`--target DIR`, the same layout under DIR/vigil-bundle).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

from provisioning import manifest
from provisioning.label import Label, LabelError, write_labels
from provisioning.spec import CameraSpec
from provisioning.workspace import City, DeviceRecord, write_private

UNIT = "vigil-agent.service"


class BundleError(Exception):
    """The bundle cannot be built; the message says which input is wrong."""


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def agent_toml(record: DeviceRecord, city: City) -> str:
    """agent.toml text (pure): no password, no token, no key in it."""
    spec, d = record.spec, city.install_dir
    lines = [
        f"device_id = {_q(spec.device_id)}",
        f"county = {_q(spec.county)}",
        f"site = {_q(spec.site)}",
        f"kind = {_q(spec.kind)}",
        f"data_dir = {_q('/var/lib/vigil-agent')}",
        f"camera_credentials_file = {_q('cameras.secret')}",
    ]
    for cam in spec.cameras:
        lines += ["", "[[cameras]]", f"id = {_q(cam.camera_id)}", f"kind = {_q(cam.kind)}"]
        lines.append(f"url = {_q(cam.url)}" if cam.kind == "rtsp" else f"path = {_q(cam.path)}")
    lines += [
        "",
        "[uplink]",
        f"controllers = [{', '.join(_q(a) for a in city.controllers)}]",
        f"ca_cert = {_q(f'{d}/pki/ca.crt')}",
        f"client_cert = {_q(f'{d}/pki/{spec.device_id}.crt')}",
        f"client_key = {_q(f'{d}/pki/{spec.device_id}.key')}",
    ]
    if city.mqtt_host:
        lines += [
            "",
            "[mqtt]",
            f"host = {_q(city.mqtt_host)}",
            f"port = {city.mqtt_port}",
            f"username = {_q(spec.device_id)}",
            f"password_file = {_q(f'{d}/mqtt.password')}",
        ]
    return "\n".join(lines) + "\n"


def credentials_toml(cameras: tuple[CameraSpec, ...]) -> str:
    lines: list[str] = []
    for cam in cameras:
        if cam.kind == "rtsp" and cam.username:
            lines += [f"[{_q(cam.camera_id)}]", f"username = {_q(cam.username)}"]
            lines += [f"password = {_q(cam.password)}", ""]
    return "\n".join(lines)


def unit_text(city: City, device_id: str) -> str:
    d = city.install_dir
    return f"""[Unit]
Description=Vigil edge agent ({device_id})
After=network-online.target
Wants=network-online.target

[Service]
User=vigil
Environment=PATH=/opt/vigil-agent/venv/bin:/usr/bin:/bin
# First boot: make the key, enroll (retries with backoff while the city is unreachable);
# later boots: renew when due, else nothing.
ExecStartPre=/opt/vigil-agent/venv/bin/vigil-agent enroll --config {d}/agent.toml \\
    --address {city.enroll_address} --token-file {d}/enroll.token
ExecStart=/opt/vigil-agent/venv/bin/vigil-agent run --config {d}/agent.toml
Restart=always
RestartSec=10
TimeoutStartSec=infinity
UMask=0077

[Install]
WantedBy=multi-user.target
"""


RENEW_UNITS = ("vigil-agent-renew.service", "vigil-agent-renew.timer")


def renew_units(city: City) -> dict[str, str]:
    """A daily timer: `vigil-agent enroll` renews the certificate once it is due (two thirds
    of its validity) and the agent is restarted to use it, with no installer on site."""
    d = city.install_dir
    enroll = (
        f"/opt/vigil-agent/venv/bin/vigil-agent enroll --config {d}/agent.toml "
        f"--address {city.enroll_address} --max-attempts 5"
    )
    service = f"""[Unit]
Description=Vigil agent certificate renewal
After=network-online.target

[Service]
Type=oneshot
User=vigil
ExecStart={enroll}
# "+": as root, to restart the agent only when this run renewed (enrollment.json says so).
ExecStartPost=+/bin/sh -c 'grep -q renewed /var/lib/vigil-agent/enrollment.json && \\
    systemctl try-restart vigil-agent.service || true'
"""
    timer = """[Unit]
Description=Vigil agent certificate renewal, daily

[Timer]
OnBootSec=1h
OnUnitActiveSec=1d
RandomizedDelaySec=1h
Persistent=true

[Install]
WantedBy=timers.target
"""
    return {RENEW_UNITS[0]: service, RENEW_UNITS[1]: timer}


INSTALL_SH = """#!/bin/sh
# Install this Vigil bundle:
#   on the device:       ./install.sh --site SITE --system   (user, systemd unit, start)
#   into a tree:         ./install.sh --site SITE --root DIR [--arch x86_64|aarch64]
# Checks the manifest first: a changed file or a bundle for another site installs nothing.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=""; SITE=""; SYSTEM=""; ARCH=$(uname -m); PYTHON=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="$2"; shift 2;;
    --system) SYSTEM=1; shift;;
    --site) SITE="$2"; shift 2;;
    --arch) ARCH="$2"; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
[ -n "$SITE" ] || { echo "give --site SITE (the site you are standing at)" >&2; exit 2; }
if [ -z "$SYSTEM" ] && [ -z "$ROOT" ]; then
  echo "give --system (install on this device) or --root DIR" >&2; exit 2
fi
if [ -n "$SYSTEM" ] && [ -n "$ROOT" ]; then echo "--system and --root exclude" >&2; exit 2; fi
"$PYTHON" "$HERE/verify_manifest.py" "$HERE" --site "$SITE" || exit 1
ETC="$ROOT@INSTALL_DIR@"
umask 077
mkdir -p "$ETC/pki" "$ROOT/var/lib/vigil-agent" "$ROOT/opt/vigil-agent"
if [ -d "$HERE/wheelhouse/$ARCH" ]; then
  "$PYTHON" -m venv "$ROOT/opt/vigil-agent/venv"
  # Every wheel of the wheelhouse: the agent, its dependencies and any --also extras.
  "$ROOT/opt/vigil-agent/venv/bin/pip" install -q --no-index \\
      --find-links "$HERE/wheelhouse/$ARCH" "$HERE/wheelhouse/$ARCH"/*.whl
else
  echo "no wheelhouse for $ARCH in this bundle: install the agent another way" >&2
fi
cp "$HERE/agent.toml" "$ETC/agent.toml"; chmod 644 "$ETC/agent.toml"
cp "$HERE/pki/ca.crt" "$ETC/pki/ca.crt"; chmod 644 "$ETC/pki/ca.crt"
for f in cameras.secret enroll.token; do
  [ -f "$HERE/$f" ] && { cp "$HERE/$f" "$ETC/$f"; chmod 600 "$ETC/$f"; }
done
mkdir -p "$ROOT/etc/systemd/system"
for unit in vigil-agent.service vigil-agent-renew.service vigil-agent-renew.timer; do
  cp "$HERE/$unit" "$ROOT/etc/systemd/system/$unit"
done
if [ -n "$SYSTEM" ]; then
  id vigil >/dev/null 2>&1 || useradd --system --home /var/lib/vigil-agent vigil
  chown -R vigil "$ETC" /var/lib/vigil-agent
  systemctl daemon-reload && systemctl enable --now vigil-agent.service vigil-agent-renew.timer
fi
echo "installed @DEVICE_ID@ for site $SITE"
"""


def label_payload(record: DeviceRecord) -> str:
    """What the QR code carries: enough to match box, bundle and token, no secret."""
    s = record.spec
    return f"VIGIL:{s.device_id};SITE:{s.county}/{s.site};TOKEN-FP:{record.token_fingerprint}"


def write_label(out: Path, record: DeviceRecord) -> None:
    try:
        import segno  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise BundleError("segno is not installed: pip install 'vigil[provision]'") from exc
    segno.make(label_payload(record), error="m").save(str(out / "label.png"), scale=8)
    s = record.spec
    (out / "label.txt").write_text(
        f"设备 Device: {s.device_id}\n站点 Site: {s.county}/{s.site}\n"
        f"令牌指纹 Token fingerprint: {record.token_fingerprint}\n",
        encoding="utf-8",
    )


def _link_tree(src: Path, dst: Path) -> None:
    """Hard links where the file system allows (a day's bundles share one wheelhouse)."""

    def link(a: str, b: str) -> object:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)
        return b

    shutil.copytree(src, dst, copy_function=link)


def build_bundle(
    out: Path,
    record: DeviceRecord,
    city: City,
    ca_pem: bytes,
    wheelhouse: Path | None = None,
    now_us: Callable[[], int] | None = None,
    label: bool = True,
    pdf_label: Label | None = None,
) -> Path:
    """Write the bundle directory at `out` (new or empty), manifest last."""
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} exists and is not empty: choose a new directory")
    if now_us is not None and record.expires_us <= now_us():
        raise BundleError(
            f"the token of {record.spec.device_id} has expired: `vigil-provision device token`"
        )
    if wheelhouse is not None and not any(wheelhouse.glob("*/vigil-*.whl")):
        raise BundleError(
            f"{wheelhouse} holds no ARCH/vigil-*.whl: run `vigil-provision wheelhouse`"
        )
    spec = record.spec
    (out / "pki").mkdir(parents=True, exist_ok=True)
    (out / "agent.toml").write_text(agent_toml(record, city), encoding="utf-8")
    write_private(out / "cameras.secret", credentials_toml(spec.cameras).encode())
    write_private(out / "enroll.token", (record.token + "\n").encode())
    (out / "pki" / "ca.crt").write_bytes(ca_pem)
    (out / UNIT).write_text(unit_text(city, spec.device_id), encoding="utf-8")
    for name, text in renew_units(city).items():
        (out / name).write_text(text, encoding="utf-8")
    script = INSTALL_SH.replace("@INSTALL_DIR@", city.install_dir)
    (out / "install.sh").write_text(script.replace("@DEVICE_ID@", spec.device_id))
    os.chmod(out / "install.sh", 0o755)  # noqa: S103 - a script anyone may read and run
    shutil.copyfile(manifest.__file__, out / manifest.CHECKER)
    if wheelhouse is not None:
        _link_tree(wheelhouse, out / "wheelhouse")
    if label:
        write_label(out, record)
    if pdf_label is not None:
        try:
            write_labels(out / "label.pdf", [pdf_label])
        except LabelError as exc:
            raise BundleError(str(exc)) from None
    about = {"device_id": spec.device_id, "site": spec.site, "county": spec.county}
    body = manifest.build(out, about)
    (out / manifest.MANIFEST).write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    return out


def to_targz(bundle: Path, archive: Path) -> Path:
    """The bundle as one .tar.gz (modes kept: secrets stay 0600 when unpacked with -p)."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(bundle, arcname=bundle.name)
    os.chmod(archive, 0o600)
    return archive
