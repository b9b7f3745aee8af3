#!/usr/bin/env bash
# Install hls.js for the web console: npm fetches it into a throw-away directory and only
# dist/hls.min.js is copied to controller/web/vendor/ (gitignored; nothing from node_modules
# is committed). Idempotent: does nothing when the file is already there, unless --force.
#
#   scripts/fetch_hlsjs.sh [--force]          (HLSJS_VERSION=1 by default: the newest 1.x)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$here/controller/web/vendor/hls.min.js"
version="${HLSJS_VERSION:-1}"

if [[ -s "$dest" && "${1:-}" != "--force" ]]; then
  echo "hls.js already installed: $dest"
  exit 0
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
npm install --prefix "$work" --no-audit --no-fund --silent "hls.js@$version" >&2
src="$work/node_modules/hls.js/dist/hls.min.js"
if [[ ! -s "$src" ]]; then
  echo "npm installed hls.js@$version but $src is missing" >&2
  exit 1
fi
mkdir -p "$(dirname "$dest")"
cp "$src" "$dest.tmp"
mv "$dest.tmp" "$dest"
echo "installed hls.js $(node -p "require('$work/node_modules/hls.js/package.json').version" 2>/dev/null || echo "$version") -> $dest"
