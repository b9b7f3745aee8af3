"""What this machine must have for Vigil's tests and demo, checked by what the suite uses.

Package names are not the requirement: a machine can hold `gstreamer1.0-plugins-base` installed
without its recommends and still lack `textoverlay` (it lives in `gstreamer1.0-x`). So each
requirement here is a thing the suite touches — a GStreamer element (`gst-inspect-1.0 NAME`), a
`gi` module under Debian's own Python (the camera emulator runs there), a binary, a CJK font —
with the Debian package that provides it. `make test` and `make demo` run this first:

    python3 scripts/system_requirements.py            # check; as root, install what is missing
    python3 scripts/system_requirements.py --check    # check only, never install

Missing pieces are installed when running as root (apt-get, no recommends), then checked
again; otherwise each is named with the command that installs it, and the exit code is 1.
The test suite runs the same check (tests/unit/test_system_requirements.py reads the table,
tests/integration/test_system_requirements.py checks this machine), so a missing element fails
one clear test instead of every camera test.

Standard library only: it runs before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

GST_PYTHON = "/usr/bin/python3"  # `gi` imports only in Debian's own interpreter


@dataclass(frozen=True, slots=True)
class Requirement:
    """One thing the suite needs, how to look for it, and the Debian package that has it."""

    kind: str  # "element" | "gi" | "binary" | "font" | "file"
    name: str
    package: str
    why: str


def _elements(package: str, why: str, *names: str) -> list[Requirement]:
    return [Requirement("element", n, package, why) for n in names]


CAMERA = "emulated cameras (vigil-camsim)"
REQUIREMENTS: tuple[Requirement, ...] = (
    *_elements(
        "gstreamer1.0-plugins-base",
        CAMERA,
        "appsrc",
        "appsink",
        "videotestsrc",
    ),
    *_elements("gstreamer1.0-x", CAMERA + ": camera label and clock", "textoverlay", "timeoverlay"),
    *_elements(
        "gstreamer1.0-plugins-good",
        CAMERA + ": RTP payloaders, G.711",
        "rtph264pay",
        "rtph265pay",
        "rtpmp4gpay",
        "rtppcmapay",
        "rtppcmupay",
        "alawenc",
        "mulawenc",
        "aacparse",
        "jpegenc",
        "rtpjpegpay",
    ),
    *_elements(
        "gstreamer1.0-plugins-bad",
        CAMERA + ": H.264/H.265 parsing, H.265 and AAC encoders",
        "h264parse",
        "h265parse",
        "x265enc",
        "voaacenc",
        "jpegparse",
    ),
    *_elements("gstreamer1.0-plugins-ugly", CAMERA + ": H.264 encoder", "x264enc"),
    Requirement("gi", "Gst", "python3-gi gir1.2-gstreamer-1.0", CAMERA),
    Requirement("gi", "GstRtspServer", "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp", CAMERA),
    Requirement("binary", "gst-inspect-1.0", "gstreamer1.0-tools", "checking GStreamer elements"),
    Requirement("binary", "mosquitto", "mosquitto", "MQTT broker (fleet health)"),
    Requirement("binary", "mosquitto_passwd", "mosquitto", "MQTT password files"),
    Requirement("binary", "mosquitto_sub", "mosquitto-clients", "MQTT tests"),
    Requirement("binary", "ffmpeg", "ffmpeg", "decoding checks of recorded segments"),
    Requirement("binary", "ffprobe", "ffmpeg", "probing recorded segments"),
    Requirement("binary", "chromium", "chromium", "web console tests (Playwright)"),
    Requirement("binary", "sipp", "sip-tester", "GB/T 28181 tests (SIPp drives the signalling)"),
    Requirement("binary", "ip", "iproute2", "rig tests (network namespaces)"),
    Requirement("binary", "tc", "iproute2", "rig tests (bandwidth caps)"),
    Requirement("binary", "/usr/lib/postgresql/*/bin/initdb", "postgresql", "private PostgreSQL"),
    Requirement("binary", "/usr/lib/postgresql/*/bin/pg_ctl", "postgresql", "private PostgreSQL"),
    Requirement("binary", "fc-list", "fontconfig", "font checks"),
    Requirement("font", "zh", "fonts-noto-cjk", "legible Chinese in console screenshots"),
    Requirement(
        "file", "/usr/share/zoneinfo/Asia/Shanghai", "tzdata", "NVR file names in local time"
    ),
)

Probe = Callable[[Requirement], bool]


def missing(requirements: Iterable[Requirement], present: Probe) -> list[Requirement]:
    """The requirements `present` says are absent, in table order."""
    return [r for r in requirements if not present(r)]


def packages_for(absent: Sequence[Requirement]) -> list[str]:
    """The Debian packages that provide the absent requirements, each once, in order."""
    seen: dict[str, None] = {}
    for req in absent:
        for pkg in req.package.split():
            seen.setdefault(pkg, None)
    return list(seen)


def install_command(packages: Sequence[str]) -> str:
    return "apt-get install -y --no-install-recommends " + " ".join(packages)


def report(absent: Sequence[Requirement]) -> str:
    """One line per absent requirement, then the command that installs them all."""
    if not absent:
        return "all system requirements are present"
    lines = [
        f"missing {r.kind} {r.name!r} (package {r.package}): needed for {r.why}" for r in absent
    ]
    lines.append(f"install with: sudo {install_command(packages_for(absent))}")
    return "\n".join(lines)


# -- probes of this machine (the imperative shell) ---------------------------------------------


def _run_ok(argv: Sequence[str], timeout: float = 30.0) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _binary(name: str) -> bool:
    if "*" in name:
        return any(os.access(p, os.X_OK) for p in glob.glob(name))
    return shutil.which(name) is not None or os.access(f"/usr/sbin/{name}", os.X_OK)


def _gi(module: str) -> bool:
    if not os.access(GST_PYTHON, os.X_OK):
        return False
    code = (
        "import gi; gi.require_version('Gst', '1.0'); "
        f"gi.require_version({module!r}, '1.0'); from gi.repository import {module}"
    )
    return _run_ok([GST_PYTHON, "-c", code])


def _font(lang: str) -> bool:
    if shutil.which("fc-list") is None:
        return False
    try:
        out = subprocess.run(
            ["fc-list", f":lang={lang}", "family"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return bool(out.stdout.strip())


def _elements_present(names: Sequence[str]) -> set[str]:
    """Which GStreamer elements exist, in one Debian-Python process (gst-inspect per element
    costs ~0.1 s each); falls back to gst-inspect-1.0 when gi is missing."""
    if os.access(GST_PYTHON, os.X_OK):
        code = (
            "import sys, gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; "
            "Gst.init(None); "
            "print('\\n'.join(n for n in sys.argv[1:] if Gst.ElementFactory.find(n)))"
        )
        try:
            out = subprocess.run(
                [GST_PYTHON, "-c", code, *names], capture_output=True, text=True, timeout=60
            )
            if out.returncode == 0:
                return set(out.stdout.split())
        except (OSError, subprocess.TimeoutExpired):
            pass
    if shutil.which("gst-inspect-1.0") is None:
        return set()
    return {n for n in names if _run_ok(["gst-inspect-1.0", "--exists", n])}


def machine_probe(requirements: Sequence[Requirement]) -> Probe:
    """A probe of this machine; GStreamer elements are looked up all at once."""
    elements = _elements_present([r.name for r in requirements if r.kind == "element"])
    checks: dict[str, Callable[[str], bool]] = {
        "element": elements.__contains__,
        "gi": _gi,
        "binary": _binary,
        "font": _font,
        "file": os.path.exists,
    }
    return lambda req: checks[req.kind](req.name)


def check_machine(requirements: Sequence[Requirement] = REQUIREMENTS) -> list[Requirement]:
    return missing(requirements, machine_probe(requirements))


def _apt_install(packages: Sequence[str]) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing Debian packages: {' '.join(packages)}", flush=True)
    update = subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
    if update.returncode != 0:
        return False
    argv = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    return subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=False).returncode == 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check only, never install")
    args = parser.parse_args(argv)
    absent = check_machine()
    if absent and not args.check and os.geteuid() == 0:
        _apt_install(packages_for(absent))
        absent = check_machine()
    if absent:
        print(report(absent), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
