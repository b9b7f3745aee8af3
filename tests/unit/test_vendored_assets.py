"""Every vendored asset is pinned by version and SHA-256 in one table
(scripts/fetch_web_assets.sh), so the console ships the exact bytes that were tested, and an
installed copy is checked against it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "fetch_web_assets.sh"
ROW = re.compile(r'^\s*"(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)"\s*$', re.M)


def pins() -> dict[str, tuple[str, str, str]]:
    """vendored file name -> (npm package, version, SHA-256), from the script's table."""
    text = SCRIPT.read_text(encoding="utf-8")
    return {dest: (name, version, sha) for name, version, _f, dest, sha in ROW.findall(text)}


def test_every_asset_is_pinned_by_exact_version_and_hash() -> None:
    found = pins()
    assert {"hls.min.js", "mpegts.js", "echarts.min.js"} <= set(found), found
    for dest, (name, version, sha) in found.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), (dest, version)
        assert re.fullmatch(r"[0-9a-f]{64}", sha), (dest, sha)
        assert re.fullmatch(r"[a-z0-9.@/_-]+", name), name
    text = SCRIPT.read_text(encoding="utf-8")
    assert '"$name@$version"' in text and '!= "$sha"' in text  # npm pinned, hash checked


def test_make_web_installs_every_vendored_asset() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "scripts/fetch_web_assets.sh" in makefile


def test_every_vendored_file_is_pinned() -> None:
    """Anything in controller/web/vendor/ (gitignored, installed by the script) is a pinned
    asset with the pinned bytes; a file nobody pinned is an error."""
    vendor = ROOT / "controller" / "web" / "vendor"
    expected = {dest: sha for dest, (_n, _v, sha) in pins().items()}
    for path in vendor.iterdir():
        if path.name == ".gitignore" or path.name.endswith(".tmp"):
            continue
        assert path.name in expected, f"{path} is vendored but not pinned in {SCRIPT.name}"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == expected[path.name], f"{path} is not the pinned version: run make web"
