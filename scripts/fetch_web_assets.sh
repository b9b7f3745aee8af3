#!/usr/bin/env bash
# Install the web console's third-party assets: npm fetches each pinned version into a throw-away
# directory, the file is checked against its pinned SHA-256 and only then copied to
# controller/web/vendor/ (gitignored; nothing from node_modules is committed). Idempotent: an
# installed file that already has the pinned hash is left alone, unless --force.
#
#   scripts/fetch_web_assets.sh [--force]
#
# One table, one line per asset: name | version | file in the npm package | vendored as |
# SHA-256. Every asset is pinned by exact version and hash (tests/unit/test_vendored_assets.py
# checks the table's shape and the installed bytes). To add or upgrade one: edit its line, run
# with --force, and check the console (tests/integration/test_browser_*.py).
set -euo pipefail

ASSETS=(
  # name      version  file in the package  vendored as   SHA-256
  "hls.js     1.7.4    dist/hls.min.js      hls.min.js    cfc70cc9e9fc63d071919e087670abc760c8fd1bc889b88588026e4d22193bbe"
  "mpegts.js  1.8.2    dist/mpegts.js       mpegts.js     bda31748736a69cb610c2edf4623e633f1f4f47b5bda83668c8d287e51b0c3a8"
  "echarts    5.6.0    dist/echarts.min.js  echarts.min.js  bf4a223524e40b77c304bec67e1222cf551f14880cf42c69dc046558e11c07b1"
)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vendor="$here/controller/web/vendor"
force="${1:-}"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

ensure_npm() {
  if ! command -v npm >/dev/null 2>&1 && [[ "$(id -u)" -eq 0 ]]; then
    echo "installing npm (Debian packages nodejs npm)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null || true
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm is not installed: apt-get install -y npm (or install Node.js), then re-run $0" >&2
    exit 1
  fi
}

work=""
cleanup() { [[ -n "$work" ]] && rm -rf "$work"; return 0; }
trap cleanup EXIT

for row in "${ASSETS[@]}"; do
  read -r name version file dest_name sha <<<"$row"
  dest="$vendor/$dest_name"
  if [[ -s "$dest" && "$force" != "--force" ]]; then
    if [[ "$(sha256_of "$dest")" == "$sha" ]]; then
      echo "$name $version already installed: $dest"
      continue
    fi
    echo "$name at $dest is not the pinned $version (SHA-256 differs): replacing it" >&2
  fi
  ensure_npm
  [[ -n "$work" ]] || work="$(mktemp -d)"
  npm install --prefix "$work" --no-audit --no-fund --silent --save-exact "$name@$version" >&2
  src="$work/node_modules/$name/$file"
  if [[ ! -s "$src" ]]; then
    echo "npm installed $name@$version but $src is missing" >&2
    exit 1
  fi
  got="$(sha256_of "$src")"
  if [[ "$got" != "$sha" ]]; then
    echo "$name@$version $file has SHA-256 $got, pinned $sha: not installed" >&2
    exit 1
  fi
  mkdir -p "$vendor"
  cp "$src" "$dest.tmp"
  mv "$dest.tmp" "$dest"
  echo "installed $name $version (SHA-256 $sha) -> $dest"
done
