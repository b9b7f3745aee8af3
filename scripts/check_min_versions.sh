#!/usr/bin/env bash
# Install Vigil with every direct dependency at the lowest version pyproject.toml allows (uv's
# lowest-direct resolution) into a throw-away venv, import every module and run the unit tests.
# Proves the declared floors are true; needs the package index (not part of `make test`).
#
#   scripts/check_min_versions.sh            (make check-min-versions)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q uv
uv="$work/venv/bin/uv"
"$uv" pip compile "$here/pyproject.toml" --extra controller --resolution lowest-direct \
  --python-version 3.11 -q -o "$work/lowest.txt"
"$uv" pip install --python "$work/venv/bin/python" -q -r "$work/lowest.txt"
"$uv" pip install --python "$work/venv/bin/python" -q -c "$work/lowest.txt" \
  "pytest>=8" "pytest-timeout>=2.3" "hypothesis>=6" "httpx>=0.27" "grpcio-tools==1.85.1"
echo "lowest versions:" && grep -E '^[a-z]' "$work/lowest.txt" | tr '\n' ' ' && echo
cd "$here"
"$work/venv/bin/python" - <<'PY'
import importlib, pkgutil
failed = []
count = 0
for pkg in ["edge_agent", "controller", "provisioning", "vigil_common", "protos"]:
    for info in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + "."):
        if info.name.endswith("__main__"):
            continue
        count += 1
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # report every module that does not import
            failed.append(f"{info.name}: {exc!r}")
print(f"{count} modules imported, {len(failed)} failed")
for line in failed:
    print(line)
raise SystemExit(1 if failed else 0)
PY
# Lint and proto drift need the pinned dev tools (mypy-protobuf), not the runtime floors.
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit \
  --deselect tests/unit/test_lint.py \
  --deselect tests/unit/test_protos_current.py::test_generated_protobuf_code_is_current
