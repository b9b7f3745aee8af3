#!/usr/bin/env bash
# Install mpegts.js (the live view's MPEG-TS player, Apache-2.0) for the web console: npm fetches
# one pinned version into a throw-away directory,
# dist/mpegts.js is checked against its pinned SHA-256 and only then copied to
# controller/web/vendor/ (gitignored; nothing from node_modules is committed). Idempotent: does
# nothing when the installed file already has the pinned hash, unless --force.
#
#   scripts/fetch_mpegtsjs.sh [--force]
#
# Every vendored asset is pinned here by version and hash (tests/unit/test_vendored_assets.py
# checks the pins have that shape). To upgrade: change both lines, run with --force, and check
# the console plays live (tests/integration/test_browser_live.py).
set -euo pipefail

MPEGTSJS_VERSION="1.8.2"
MPEGTSJS_SHA256="bda31748736a69cb610c2edf4623e633f1f4f47b5bda83668c8d287e51b0c3a8"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$here/controller/web/vendor/mpegts.js"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -s "$dest" && "${1:-}" != "--force" ]]; then
  if [[ "$(sha256_of "$dest")" == "$MPEGTSJS_SHA256" ]]; then
    echo "mpegts.js $MPEGTSJS_VERSION already installed: $dest"
    exit 0
  fi
  echo "mpegts.js at $dest is not the pinned $MPEGTSJS_VERSION (SHA-256 differs): replacing it" >&2
fi
if ! command -v npm >/dev/null 2>&1 && [[ "$(id -u)" -eq 0 ]]; then
  echo "installing npm (Debian packages nodejs npm)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null || true
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is not installed: apt-get install -y npm (or install Node.js), then re-run $0" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
npm install --prefix "$work" --no-audit --no-fund --silent --save-exact "mpegts.js@$MPEGTSJS_VERSION" >&2
src="$work/node_modules/mpegts.js/dist/mpegts.js"
if [[ ! -s "$src" ]]; then
  echo "npm installed mpegts.js@$MPEGTSJS_VERSION but $src is missing" >&2
  exit 1
fi
got="$(sha256_of "$src")"
if [[ "$got" != "$MPEGTSJS_SHA256" ]]; then
  echo "mpegts.js@$MPEGTSJS_VERSION dist/mpegts.js has SHA-256 $got, pinned $MPEGTSJS_SHA256: not installed" >&2
  exit 1
fi
mkdir -p "$(dirname "$dest")"
cp "$src" "$dest.tmp"
mv "$dest.tmp" "$dest"
echo "installed mpegts.js $MPEGTSJS_VERSION (SHA-256 $MPEGTSJS_SHA256) -> $dest"
