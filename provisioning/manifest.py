"""The bundle's manifest: SHA-256 of every file, and who the bundle is for (stdlib only).

This file is copied into every bundle as `verify_manifest.py`, so the device checks its bundle
with nothing installed but Python:

    python3 verify_manifest.py BUNDLE_DIR [--site SITE] [--device-id ID]

A changed, missing or extra file, or a bundle built for another site or device, is named and
the exit code is 1: install.sh stops before it installs anything.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

MANIFEST = "manifest.json"
CHECKER = "verify_manifest.py"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_of(root: Path) -> list[str]:
    """Every file under `root` but the manifest itself, as sorted POSIX paths."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != MANIFEST
    )


def build(root: Path, about: dict[str, str]) -> dict[str, object]:
    return {**about, "files": {name: sha256_file(root / name) for name in files_of(root)}}


def problems(root: Path, site: str = "", device_id: str = "") -> list[str]:
    """What is wrong with the bundle at `root` ([] when intact and meant for this place)."""
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        listed = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{MANIFEST} missing or unreadable: {exc}"]
    out: list[str] = []
    if site and manifest.get("site") != site:
        out.append(f"bundle is for site {manifest.get('site')!r}, not {site!r}")
    if device_id and manifest.get("device_id") != device_id:
        out.append(f"bundle is for device {manifest.get('device_id')!r}, not {device_id!r}")
    present = set(files_of(root))
    for name in sorted(set(listed) - present):
        out.append(f"missing file: {name}")
    for name in sorted(present - set(listed)):
        out.append(f"unexpected file: {name}")
    for name in sorted(present & set(listed)):
        if sha256_file(root / name) != listed[name]:
            out.append(f"changed file: {name} (hash differs from the manifest)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="check a Vigil bundle against its manifest")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--site", default="")
    parser.add_argument("--device-id", default="")
    args = parser.parse_args(argv)
    found = problems(args.bundle, args.site, args.device_id)
    for line in found:
        sys.stdout.write(f"PROBLEM: {line}\n")
    if not found:
        sys.stdout.write(f"{args.bundle}: intact\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
