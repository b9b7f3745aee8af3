"""Run the whole suite as two pytest processes at once: the serial tests and the rest in parallel.

    .venv/bin/python scripts/run_suite.py                 # what `make test` runs
    .venv/bin/python scripts/run_suite.py --workers 1     # the rest on one worker
    .venv/bin/python scripts/run_suite.py -- -x -k ingest # extra pytest arguments for both

Why two processes: most integration tests wait on a clock (a camera's GOP, a lease, a
broker's keepalive), not on the CPU, so they run well side by side on pytest-xdist workers.
The `rig` tests (and any test marked `xdist_group`) measure bandwidth and timing on shaped
links or kill processes in loops; two of them at once would disturb each other's figures. They
run one at a time in their own pytest process, started first and beside the parallel one.
(pytest-xdist's own `--dist loadgroup` would do this in one process, but with pytest 9 it
sends a group's tests to different workers.)

The parallel run prints to the terminal as it goes; the serial run writes its log to
`build/test-logs/serial.log`, printed whole when both have finished. The exit code is 0 only
when both passed. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERIAL = "rig or xdist_group"
LOG_DIR = ROOT / "build" / "test-logs"


def commands(pytest: str, workers: int, base: Path, extra: list[str]) -> dict[str, list[str]]:
    """The two pytest command lines, each with its own temporary directory."""
    parallel = ["-n", str(workers)] if workers > 1 else ["-p", "no:xdist"]
    return {
        "serial": [
            pytest,
            "-q",
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
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / "serial.log"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vigil-suite-") as tmp:
        cmds = commands(pytest, args.workers, Path(tmp), args.extra)
        with log_path.open("wb") as log:
            serial = subprocess.Popen(cmds["serial"], cwd=ROOT, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
            parallel = subprocess.Popen(cmds["parallel"], cwd=ROOT, start_new_session=True)
            procs = {"serial": serial, "parallel": parallel}

            def stop(signum: int, _frame: object) -> None:
                for proc in procs.values():
                    if proc.poll() is None:
                        os.killpg(proc.pid, signal.SIGTERM)
                raise SystemExit(128 + signum)

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            codes = {name: proc.wait() for name, proc in procs.items()}
    print(f"\n===== serial tests (rig, xdist_group), log {log_path} =====", flush=True)
    sys.stdout.write(log_path.read_text(encoding="utf-8", errors="replace"))
    minutes = (time.monotonic() - started) / 60
    print(f"\nsuite: serial exit {codes['serial']}, parallel exit {codes['parallel']}, "
          f"{minutes:.1f} min", flush=True)  # fmt: skip
    return exit_code(codes)


if __name__ == "__main__":
    sys.exit(main())
