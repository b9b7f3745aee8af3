"""`vigil-provision`: for field installers.

    vigil-provision bundle --device-id nvr-wudu-001 --county wudu --site v001 \
        --camera cam-1=rtsp://user:pass@192.0.2.10/Streaming/1 --controller city.example:7443 \
        [--controller ctl2.city.example:7443 ...] \
        --pki-dir pki/ [--mqtt-host H --mqtt-password-file F] --out bundle-nvr-wudu-001/
    vigil-provision verify BUNDLE_DIR         # on the installed device: ready to run?

Registering the device and issuing its certificate happen at the controller
(`vigil-controller register-device`, `issue-cert`, `mqtt-account`); this tool assembles and
checks what goes onto the NVR.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from provisioning.bundle import BundleError, Camera, agent_toml, build_bundle, verify_bundle


def _camera(text: str) -> Camera:
    camera_id, sep, url = text.partition("=")
    if not sep or not camera_id or not url:
        raise argparse.ArgumentTypeError(f"--camera wants ID=URL, got {text.split('@')[-1]!r}")
    return Camera(camera_id, url)


def controller_list(values: Sequence[str]) -> list[str]:
    """`--controller` values, each one address or a comma-separated list, in order."""
    return [a.strip() for arg in values for a in arg.split(",") if a.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil-provision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = sub.add_parser("bundle", help="assemble the directory to flash onto a device")
    b.add_argument("--device-id", required=True)
    b.add_argument("--county", required=True)
    b.add_argument("--site", required=True)
    b.add_argument("--camera", type=_camera, action="append", default=[], help="ID=rtsp://...")
    b.add_argument(
        "--controller",
        required=True,
        action="append",
        help="HOST:PORT of the controller's gRPC; several replicas: repeat it or separate with "
        "commas, in order of preference (the first is the device's home replica)",
    )
    b.add_argument("--pki-dir", type=Path, required=True, help="output of issue-cert")
    b.add_argument("--mqtt-host", default="")
    b.add_argument("--mqtt-port", type=int, default=1883)
    b.add_argument("--mqtt-password-file", type=Path)
    b.add_argument("--install-dir", default="/etc/vigil-agent")
    b.add_argument("--out", type=Path, required=True)
    v = sub.add_parser("verify", help="check an installed bundle is ready to run")
    v.add_argument("bundle", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bundle":
        text = agent_toml(
            args.device_id,
            args.county,
            args.site,
            args.camera,
            controller_list(args.controller),
            args.install_dir,
            args.mqtt_host,
            args.mqtt_port,
        )
        try:
            out = build_bundle(
                args.out, text, args.device_id, args.pki_dir, args.mqtt_password_file
            )
        except (BundleError, OSError) as exc:
            sys.stderr.write(f"bundle: {exc}\n")
            return 2
        sys.stdout.write(f"bundle written to {out}\n")
        return 0
    problems = verify_bundle(args.bundle)
    for problem in problems:
        sys.stdout.write(f"PROBLEM: {problem}\n")
    if not problems:
        sys.stdout.write(f"{args.bundle}: ready\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
