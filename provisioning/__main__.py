"""`vigil-provision`: the field installer's tool (laptop side, and the check on the device).

    vigil-provision [-w WORKSPACE] init --api URL --user U --ca-cert CA --controller H:P \
        --enroll H:P [--mqtt-host H --mqtt-port P]
    vigil-provision site add --county C --site S --name 石门村 [--township T] [--lat --lon]
    vigil-provision site list --county C         the county's sites and their devices
    vigil-provision device add --device-id D --county C --site S [--kind nvr|handheld] \
        --camera ID=rtsp://user:pass@host/path [--camera ID=nvr:/folder ...] [--fps 25] \
        [--gb-code 20DIGITS] [--ttl-s S]
    vigil-provision device token D | retire D | replace OLD NEW
    vigil-provision batch FILE.csv              register a day's devices, tokens into WORKSPACE
    vigil-provision batch FILE.csv --offline --out DIR [--wheelhouse WH]  bundles, no link
    vigil-provision bundle D [--out DIR | --target MOUNT] [--tar] [--wheelhouse WH]
    vigil-provision wheelhouse --out WH [--arch x86_64 --arch aarch64]
    vigil-provision discover [--device-id D] [--camera-user U --camera-password-file F]
    vigil-provision check-bundle DIR [--site S]   (on the device: manifest, site)
    vigil-provision verify D [--lang en]          site acceptance: pass/fail table

Online commands log in as an installer (password from --password-file or
VIGIL_PROVISION_PASSWORD_FILE); the controller limits them to the installer's county.
Exit codes: 0 fine, 1 refused or failed (the message says why), 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from provisioning import commands


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vigil-provision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-w", "--workspace", type=Path, default=Path("vigil-install"))
    p.add_argument("--password-file", type=Path, help="the installer's password (first line)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    i = sub.add_parser("init", help="what the city gave you: API, CA, controller addresses")
    i.add_argument("--api", required=True, help="https://controller:8443")
    i.add_argument("--user", required=True)
    i.add_argument("--ca-cert", type=Path, required=True)
    i.add_argument("--controller", action="append", required=True, help="gRPC HOST:PORT")
    i.add_argument("--enroll", required=True, help="enrollment listener HOST:PORT")
    i.add_argument("--mqtt-host", default="")
    i.add_argument("--mqtt-port", type=int, default=1883)
    i.add_argument("--install-dir", default="/etc/vigil-agent")
    st = sub.add_parser("site", help="站点：登记县里名单上的村/点位 (sites of the county's list)")
    ssub = st.add_subparsers(dest="action", required=True, metavar="ACTION")
    sa = ssub.add_parser("add", help="登记或更名一个站点")
    sa.add_argument("--county", required=True)
    sa.add_argument("--site", required=True, help="the list's site id")
    sa.add_argument("--name", required=True, help="站点名称，如 石门村")
    sa.add_argument("--township", default="", help="乡镇")
    sa.add_argument("--lat", type=float)
    sa.add_argument("--lon", type=float)
    sl = ssub.add_parser("list", help="本县站点及其设备")
    sl.add_argument("--county", required=True)
    d = sub.add_parser("device", help="add a device, new token, retire, replace")
    dsub = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = dsub.add_parser("add")
    add.add_argument("--device-id", required=True)
    add.add_argument("--county", required=True)
    add.add_argument("--site", required=True)
    add.add_argument("--kind", default="nvr", choices=("nvr", "handheld"))
    add.add_argument("--camera", action="append", default=[], help="ID=rtsp://... | ID=nvr:/dir")
    add.add_argument("--fps", default="", help="the frame rate the cameras are set to (verify)")
    add.add_argument("--gb-code", default="", help="GB/T 28181 code from the county's list")
    add.add_argument("--ttl-s", type=float)
    tok = dsub.add_parser("token")
    tok.add_argument("device_id")
    tok.add_argument("--ttl-s", type=float)
    ret = dsub.add_parser("retire")
    ret.add_argument("device_id")
    rep = dsub.add_parser("replace")
    rep.add_argument("old")
    rep.add_argument("new")
    b = sub.add_parser("batch", help="a day's devices from a CSV")
    b.add_argument("csv", type=Path)
    b.add_argument("--offline", action="store_true", help="build bundles from the workspace")
    b.add_argument("--out", type=Path, help="bundles directory (with --offline)")
    b.add_argument("--wheelhouse", type=Path)
    b.add_argument("--no-label", action="store_true")
    bu = sub.add_parser("bundle", help="the flashable bundle of one device")
    bu.add_argument("device_id")
    where = bu.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path)
    where.add_argument("--target", type=Path, help="a mounted SD card: DIR/vigil-bundle")
    bu.add_argument("--tar", action="store_true", help="also write OUT.tar.gz")
    bu.add_argument("--wheelhouse", type=Path)
    bu.add_argument("--no-label", action="store_true")
    w = sub.add_parser("wheelhouse", help="the agent and its dependencies as wheels")
    w.add_argument("--out", type=Path, required=True)
    w.add_argument("--arch", action="append", choices=("x86_64", "aarch64"))
    w.add_argument("--source", type=Path, help="the Vigil source tree (default: this one)")
    w.add_argument("--also", action="append", help="another requirement to include, e.g. a tool")
    dis = sub.add_parser("discover", help="find ONVIF cameras on this LAN (WS-Discovery)")
    dis.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for answers")
    dis.add_argument("--camera-user", default="", help="the cameras' ONVIF/RTSP account")
    dis.add_argument("--camera-password-file", type=Path)
    dis.add_argument("--xaddr", action="append", help="a device-service URL (no multicast)")
    dis.add_argument("--device-id", help="add what is found to this device and register it")
    c = sub.add_parser("check-bundle", help="on the device: is the bundle intact and ours?")
    c.add_argument("bundle", type=Path)
    c.add_argument("--site", default="")
    c.add_argument("--device-id", default="")
    v = sub.add_parser("verify", help="site acceptance (pass/fail table)")
    v.add_argument("device_id")
    v.add_argument("--lang", choices=("zh", "en"), default="zh")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.password_file is None and os.environ.get("VIGIL_PROVISION_PASSWORD_FILE"):
        args.password_file = Path(os.environ["VIGIL_PROVISION_PASSWORD_FILE"])
    return commands.run(args)


if __name__ == "__main__":
    sys.exit(main())
