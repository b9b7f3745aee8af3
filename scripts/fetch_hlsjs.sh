#!/usr/bin/env bash
# Install hls.js for the web console: npm fetches one pinned version into a throw-away directory,
# dist/hls.min.js is checked against its pinned SHA-256 and only then copied to
# controller/web/vendor/ (gitignored; nothing from node_modules is committed). Idempotent: does
# nothing when the installed file already has the pinned hash, unless --force.
#
#   scripts/fetch_hlsjs.sh [--force]
#
# Every vendored asset is pinned here by version and hash (tests/unit/test_vendored_assets.py
# checks the pins have that shape). To upgrade: change both lines, run with --force, and check
# the console plays (tests/integration/test_browser_playback.py).
set -euo pipefail

HLSJS_VERSION="1.7.4"
HLSJS_SHA256="cfc70cc9e9fc63d071919e087670abc760c8fd1bc889b88588026e4d22193bbe"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$here/controller/web/vendor/hls.min.js"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -s "$dest" && "${1:-}" != "--force" ]]; then
  if [[ "$(sha256_of "$dest")" == "$HLSJS_SHA256" ]]; then
    echo "hls.js $HLSJS_VERSION already installed: $dest"
    exit 0
  fi
  echo "hls.js at $dest is not the pinned $HLSJS_VERSION (SHA-256 differs): replacing it" >&2
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
npm install --prefix "$work" --no-audit --no-fund --silent --save-exact "hls.js@$HLSJS_VERSION" >&2
src="$work/node_modules/hls.js/dist/hls.min.js"
if [[ ! -s "$src" ]]; then
  echo "npm installed hls.js@$HLSJS_VERSION but $src is missing" >&2
  exit 1
fi
got="$(sha256_of "$src")"
if [[ "$got" != "$HLSJS_SHA256" ]]; then
  echo "hls.js@$HLSJS_VERSION dist/hls.min.js has SHA-256 $got, pinned $HLSJS_SHA256: not installed" >&2
  exit 1
fi
mkdir -p "$(dirname "$dest")"
cp "$src" "$dest.tmp"
mv "$dest.tmp" "$dest"
echo "installed hls.js $HLSJS_VERSION (SHA-256 $HLSJS_SHA256) -> $dest"
