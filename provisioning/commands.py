"""The commands of `vigil-provision` (parsing is in __main__.py, decisions in spec.py,
acceptance.py and manifest.py; this is the shell: workspace, controller API, files).

Nothing here prints a token, a password or a camera credential: tokens go into the
workspace (0600) and the bundle, and are shown only by their fingerprint.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from provisioning import acceptance, manifest
from provisioning.api import Api, ApiError
from provisioning.bundle import BundleError, build_bundle, to_targz
from provisioning.label import Label, LabelError, label_for, write_labels
from provisioning.spec import (
    DeviceSpec,
    SpecError,
    check_fps,
    check_id,
    device_spec,
    parse_camera,
    parse_rows,
    with_fps,
)
from provisioning.workspace import City, DeviceRecord, Workspace, WorkspaceError

PLATFORMS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "aarch64": ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
}


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(f"vigil-provision: {text}\n")


def _api(args: argparse.Namespace, city: City) -> Api:
    if args.password_file is None:
        raise ApiError("give --password-file (or VIGIL_PROVISION_PASSWORD_FILE)")
    try:
        password = args.password_file.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError) as exc:
        raise ApiError(f"cannot read the password file: {exc.__class__.__name__}") from None
    ca = Workspace(args.workspace).ca_cert
    return Api(city.api_url, city.user, password, ca if ca.is_file() else None)


def register(api: Api, ws: Workspace, spec: DeviceSpec, ttl_s: float | None) -> DeviceRecord:
    body: dict[str, Any] = {
        "device_id": spec.device_id,
        "county": spec.county,
        "site": spec.site,
        "kind": spec.kind,
        "cameras": [c.camera_id for c in spec.cameras],
        "gb_code": spec.gb_code,
    }
    if ttl_s:
        body["ttl_s"] = ttl_s
    answer = api.post("/api/v1/install/devices", body)
    record = DeviceRecord(
        spec, answer["token"], answer["token_fingerprint"], int(answer["expires_us"])
    )
    ws.save(record)
    return record


def _renewed(ws: Workspace, record: DeviceRecord, answer: dict[str, Any]) -> DeviceRecord:
    fresh = DeviceRecord(
        record.spec, answer["token"], answer["token_fingerprint"], int(answer["expires_us"])
    )
    ws.save(fresh)
    return fresh


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(1, total)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")


def cmd_batch(args: argparse.Namespace, ws: Workspace, city: City) -> int:
    try:
        specs, bad = parse_rows(args.csv.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        _err(f"cannot read {args.csv}: {exc}")
        return 2
    report: list[tuple[str, str, str]] = [(f"line {n}", "invalid", why) for n, why in bad]
    api = None if args.offline else _api(args, city)
    if args.offline and args.out is None:
        _err("--offline needs --out DIR for the bundles")
        return 2
    started = time.monotonic()
    ca_pem = ws.ca_cert.read_bytes()
    labels: list[Label] = []
    for n, spec in enumerate(specs, 1):
        try:
            if api is not None:
                record = register(api, ws, spec, None)
                report.append((spec.device_id, "registered", f"token {record.token_fingerprint}"))
            else:
                record = ws.load(spec.device_id)
                if record.spec != spec:
                    raise WorkspaceError("the CSV row differs from the registered device")
                out = build_bundle(
                    args.out / spec.device_id, record, city, ca_pem, args.wheelhouse,
                    now_us=lambda: time.time_ns() // 1000, label=not args.no_label,
                )  # fmt: skip
                report.append((spec.device_id, "bundled", str(out)))
                labels.append(label_for(record, city, ws.site(spec.county, spec.site)))
        except (ApiError, WorkspaceError, BundleError, OSError) as exc:
            report.append((spec.device_id, "failed", str(exc)))
        _progress(n, len(specs))
    if labels and not args.no_label:
        try:
            pdf = write_labels(args.out / "labels.pdf", labels)
            report.append(("labels", "printed", f"{pdf} ({len(labels)} 页 pages)"))
        except (LabelError, OSError) as exc:
            report.append(("labels", "failed", str(exc)))
    elapsed = time.monotonic() - started
    for who, result, detail in report:
        _out(f"{who}\t{result}\t{detail}")
    failed = sum(1 for _, r, _ in report if r in ("failed", "invalid"))
    _out(f"{len(report) - failed} ok, {failed} failed, {elapsed:.2f} s")
    return 1 if failed else 0


def cmd_bundle(args: argparse.Namespace, ws: Workspace, city: City) -> int:
    record = ws.load(args.device_id)
    if args.target is not None:
        if not args.target.is_dir():
            _err(f"--target {args.target} is not a mounted directory")
            return 2
        out = args.target / "vigil-bundle"
    else:
        out = args.out or Path(f"bundle-{record.spec.device_id}")
    spec = record.spec
    pdf = None if args.no_label else label_for(record, city, ws.site(spec.county, spec.site))
    build_bundle(
        out, record, city, ws.ca_cert.read_bytes(), args.wheelhouse,
        now_us=lambda: time.time_ns() // 1000, label=not args.no_label, pdf_label=pdf,
    )  # fmt: skip
    _out(f"bundle written to {out} (token {record.token_fingerprint})")
    if args.tar:
        archive = to_targz(out, out.with_name(out.name + ".tar.gz"))
        _out(f"archive {archive}")
    return 0


def cmd_wheelhouse(args: argparse.Namespace) -> int:
    """pip wheel the agent (pure Python) and pip download its dependencies per architecture
    (binary wheels only: what has no wheel for an architecture is named, not built)."""
    source = args.source or Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        build = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp, str(source)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        wheels = list(Path(tmp).glob("vigil-*.whl"))
        if build.returncode != 0 or not wheels:
            _err(f"building the agent wheel failed: {build.stderr.strip()[-400:]}")
            return 1
        for arch in args.arch or ["x86_64", "aarch64"]:
            dest = args.out / arch
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(wheels[0], dest / wheels[0].name)
            # The dependencies are those the agent's wheel declares (its metadata), resolved
            # for the target: nothing listed twice, nothing the agent does not ask for.
            cmd = [sys.executable, "-m", "pip", "download", "-q", "-d", str(dest)]
            cmd += ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp"]
            for platform in PLATFORMS[arch]:
                cmd += ["--platform", platform]
            wanted = [str(dest / wheels[0].name), *(args.also or [])]
            got = subprocess.run([*cmd, *wanted], capture_output=True, text=True, check=False)
            if got.returncode != 0:
                _err(f"{arch}: some dependencies have no wheel: {got.stderr.strip()[-400:]}")
                return 1
            _out(f"{arch}: {len(list(dest.glob('*.whl')))} wheels in {dest}")
    return 0


def cmd_verify(args: argparse.Namespace, ws: Workspace, city: City) -> int:
    facts = _api(args, city).get(f"/api/v1/install/devices/{args.device_id}/acceptance")
    try:  # the frame rates the installer gave (device add --fps, discover, the CSV)
        cams = ws.load(args.device_id).spec.cameras
        expected = {c.camera_id: c.fps for c in cams if c.fps}
    except WorkspaceError:
        expected = {}
    rows = acceptance.judge(facts, time.time_ns() // 1000, expected)
    sys.stdout.write(acceptance.render(rows, args.lang))
    return 0 if all(r.passed for r in rows) else 1


def cmd_device(args: argparse.Namespace, ws: Workspace, city: City) -> int:
    api = _api(args, city)
    if args.action == "add":
        cams = with_fps([parse_camera(c) for c in args.camera], check_fps(args.fps))
        spec = device_spec(args.device_id, args.county, args.site, args.kind, cams, args.gb_code)
        record = register(api, ws, spec, args.ttl_s)
        _out(f"{spec.device_id} registered; token {record.token_fingerprint} in {ws.root}")
    elif args.action == "token":
        record = ws.load(args.device_id)
        body = {"ttl_s": args.ttl_s} if args.ttl_s else {}
        fresh = _renewed(
            ws, record, api.post(f"/api/v1/install/devices/{args.device_id}/token", body)
        )
        _out(f"{args.device_id}: new token {fresh.token_fingerprint} (older ones cancelled)")
    elif args.action == "retire":
        answer = api.post(f"/api/v1/install/devices/{args.device_id}/retire", {})
        _out(f"{args.device_id} retired: {answer['revoked']} certificate(s) revoked")
    else:
        old = ws.load(args.old)
        answer = api.post(
            f"/api/v1/install/devices/{args.old}/replace", {"new_device_id": args.new}
        )
        spec = DeviceSpec(args.new, old.spec.county, old.spec.site, old.spec.kind, old.spec.cameras)
        fresh = DeviceRecord(
            spec, answer["token"], answer["token_fingerprint"], int(answer["expires_us"])
        )
        ws.save(fresh)
        _out(f"{args.old} retired; {args.new} takes its cameras; token {fresh.token_fingerprint}")
    return 0


def cmd_site(args: argparse.Namespace, ws: Workspace, city: City) -> int:
    api = _api(args, city)
    check_id(args.county, "county")
    if args.action == "add":
        check_id(args.site, "site")
        body: dict[str, Any] = {
            "county": args.county,
            "site_id": args.site,
            "name": args.name,
            "township": args.township,
            "lat": args.lat,
            "lon": args.lon,
        }
        site = api.post("/api/v1/install/sites", body)
        ws.save_sites([site])
        _out(f"站点 {site['county']}/{site['site_id']}（{site['name']}）已登记 registered")
        return 0
    sites = api.get(f"/api/v1/install/sites?county={args.county}")
    ws.save_sites(sites)
    _out("站点 site\t名称 name\t乡镇 township\t设备 devices")
    for site in sites:
        devices = ",".join(site["devices"]) or "-"
        _out(f"{site['site_id']}\t{site['name']}\t{site['township'] or '-'}\t{devices}")
    _out(f"{len(sites)} 个站点 site(s)")
    return 0


def cmd_discover(args: argparse.Namespace, ws: Workspace) -> int:
    from dataclasses import replace

    from provisioning.discover import discover
    from provisioning.spec import CameraSpec

    password = ""
    if args.camera_password_file is not None:
        password = args.camera_password_file.read_text(encoding="utf-8").splitlines()[0]
    found = discover(args.timeout, args.camera_user, password, args.xaddr)
    for f in found:
        res = f"{f.width}x{f.height}" if f.width else "-"
        fps = f"{f.fps:g}fps" if f.fps else "-"
        _out(f"{f.camera_id}\t{f.rtsp_url or '-'}\t{f.codec or '-'}\t{res}\t{fps}\t"
             f"{f.problem or 'ok'}")  # fmt: skip
    _out(f"{sum(1 for f in found if not f.problem)} camera(s) found, "
         f"{sum(1 for f in found if f.problem)} unreadable")  # fmt: skip
    if not args.device_id:
        return 0 if found and not any(f.problem for f in found) else 1
    city = ws.city()
    record = ws.load(args.device_id)
    have = {c.camera_id for c in record.spec.cameras}
    new = tuple(
        CameraSpec(
            f.camera_id,
            "rtsp",
            url=f.rtsp_url,
            username=args.camera_user,
            password=password,
            fps=f.fps,
        )  # fmt: skip
        for f in found
        if not f.problem and f.camera_id not in have
    )
    spec = replace(record.spec, cameras=record.spec.cameras + new)
    fresh = register(_api(args, city), ws, spec, None)
    _out(f"{args.device_id}: {len(new)} camera(s) added; new token {fresh.token_fingerprint}")
    return 0


def run(args: argparse.Namespace) -> int:
    ws = Workspace(args.workspace)
    try:
        if args.command == "check-bundle":
            found = manifest.problems(args.bundle, args.site, args.device_id)
            for line in found:
                _out(f"PROBLEM: {line}")
            if not found:
                _out(f"{args.bundle}: intact")
            return 1 if found else 0
        if args.command == "wheelhouse":
            return cmd_wheelhouse(args)
        if args.command == "discover":
            return cmd_discover(args, ws)
        if args.command == "init":
            city = City(args.api, args.user, args.controller, args.enroll, args.mqtt_host,
                        args.mqtt_port, args.install_dir)  # fmt: skip
            ws.save_city(city, args.ca_cert.read_bytes())
            _out(f"workspace {ws.root} ready")
            return 0
        city = ws.city()
        handlers = {"device": cmd_device, "batch": cmd_batch, "bundle": cmd_bundle,
                    "verify": cmd_verify, "site": cmd_site}  # fmt: skip
        return handlers[args.command](args, ws, city)
    except (SpecError, WorkspaceError) as exc:
        _err(str(exc))
        return 2
    except (ApiError, BundleError, OSError) as exc:
        _err(str(exc))
        return 1
