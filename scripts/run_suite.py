"""Run the whole suite as two pytest runs: the rest on xdist workers, then the serial tests.

    .venv/bin/python scripts/run_suite.py                 # what `make test` runs
    .venv/bin/python scripts/run_suite.py --workers 1     # the rest on one worker
    .venv/bin/python scripts/run_suite.py -- -x -k ingest # extra pytest arguments for both

Why two runs: most integration tests wait on a clock (a camera's GOP, a lease, a broker's
keepalive), not on the CPU, so they run well side by side on pytest-xdist workers. The `rig`
tests (and any test marked `xdist_group`) measure bandwidth and timing on shaped links or kill
processes in loops: they run afterwards, one at a time, on a quiet machine. (Run beside the
parallel half they were starved of CPU: an agent delivered 81 % of its link's plan against a
10 % tolerance. pytest-xdist's `--dist loadgroup` would keep a group on one worker, but with
pytest 9 it sends a group's tests to different workers.)

Both halves print to the terminal as they go; each has its own temporary directory. The exit
code is 0 only when both passed. Standard library only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERIAL = "rig or xdist_group"


def commands(pytest: str, workers: int, base: Path, extra: list[str]) -> dict[str, list[str]]:
    """The two pytest command lines, each with its own temporary directory."""
    parallel = ["-n", str(workers)] if workers > 1 else ["-p", "no:xdist"]
    return {
        "serial": [
            pytest,
            "-q",
            "--durations=10",  # the slowest, for keeping CI within its time
            "-p",
            "no:xdist",
            "-m",
            SERIAL,
            f"--basetemp={base / 'serial'}",
            *extra,
        ],  # fmt: skip
        "parallel": [
            pytest,
            "-q",
            "--durations=15",
            *parallel,
            "-m",
            f"not ({SERIAL})",
            f"--basetemp={base / 'parallel'}",
            *extra,
        ],  # fmt: skip
    }


def exit_code(codes: dict[str, int]) -> int:
    """0 only when both passed; pytest's 5 (nothing collected) counts as passed for one half."""
    bad = [code for code in codes.values() if code not in (0, 5)]
    if bad:
        return bad[0]
    return 5 if all(code == 5 for code in codes.values()) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="xdist workers for the rest")
    parser.add_argument("extra", nargs="*", help="arguments passed to both pytest runs")
    args = parser.parse_args(argv)
    pytest = str(Path(sys.executable).parent / "pytest")
    started = time.monotonic()
    codes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="vigil-suite-") as tmp:
        cmds = commands(pytest, args.workers, Path(tmp), args.extra)
        for name in ("parallel", "serial"):
            print(f"\n===== {name} tests: {' '.join(cmds[name][1:])} =====", flush=True)
            codes[name] = subprocess.run(cmds[name], cwd=ROOT, check=False).returncode
    minutes = (time.monotonic() - started) / 60
    print(f"\nsuite: parallel exit {codes['parallel']}, serial exit {codes['serial']}, "
          f"{minutes:.1f} min", flush=True)  # fmt: skip
    return exit_code(codes)


if __name__ == "__main__":
    sys.exit(main())
