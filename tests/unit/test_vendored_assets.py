"""Every vendored asset is pinned by version and SHA-256 (scripts/fetch_hlsjs.sh,
scripts/fetch_mpegtsjs.sh), so the console ships the exact bytes that were tested, and an
installed copy is checked against it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "fetch_hlsjs.sh"
MPEGTS_SCRIPT = ROOT / "scripts" / "fetch_mpegtsjs.sh"


def pins(script: Path = SCRIPT) -> dict[str, str]:
    return dict(re.findall(r'^([A-Z0-9_]+)="([^"]*)"$', script.read_text(encoding="utf-8"), re.M))


def test_hlsjs_is_pinned_by_exact_version_and_hash() -> None:
    found = pins()
    assert re.fullmatch(r"\d+\.\d+\.\d+", found["HLSJS_VERSION"]), found
    assert re.fullmatch(r"[0-9a-f]{64}", found["HLSJS_SHA256"]), found
    text = SCRIPT.read_text(encoding="utf-8")
    assert '"hls.js@$HLSJS_VERSION"' in text and '!= "$HLSJS_SHA256"' in text


def test_mpegtsjs_is_pinned_by_exact_version_and_hash() -> None:
    found = pins(MPEGTS_SCRIPT)
    assert re.fullmatch(r"\d+\.\d+\.\d+", found["MPEGTSJS_VERSION"]), found
    assert re.fullmatch(r"[0-9a-f]{64}", found["MPEGTSJS_SHA256"]), found
    text = MPEGTS_SCRIPT.read_text(encoding="utf-8")
    assert '"mpegts.js@$MPEGTSJS_VERSION"' in text and '!= "$MPEGTSJS_SHA256"' in text


def test_make_web_installs_every_vendored_asset() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "scripts/fetch_hlsjs.sh" in makefile and "scripts/fetch_mpegtsjs.sh" in makefile


def test_every_vendored_file_is_pinned() -> None:
    """Anything in controller/web/vendor/ (gitignored, installed by the script) is a pinned
    asset with the pinned bytes; a file nobody pinned is an error."""
    vendor = ROOT / "controller" / "web" / "vendor"
    expected = {
        "hls.min.js": pins()["HLSJS_SHA256"],
        "mpegts.js": pins(MPEGTS_SCRIPT)["MPEGTSJS_SHA256"],
    }
    for path in vendor.iterdir():
        if path.name == ".gitignore":
            continue
        assert path.name in expected, f"{path} is vendored but not pinned in {SCRIPT.name}"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == expected[path.name], f"{path} is not the pinned version: run make web"
