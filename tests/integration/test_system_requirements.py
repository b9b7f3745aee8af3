"""This machine has every GStreamer element, gi module, binary and font the suite uses.

One clear failure naming the missing pieces and the command that installs them, instead of
dozens of camera tests failing with "GStreamer elements missing".
"""

from __future__ import annotations

import subprocess
import sys

from tests.system_requirements_loader import SCRIPT, load

sr = load()


def test_machine_has_everything_the_suite_needs() -> None:
    absent = sr.check_machine()
    assert not absent, sr.report(absent)


def test_check_only_mode_exits_zero_here_and_installs_nothing() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "installing" not in done.stdout


def test_an_element_that_does_not_exist_is_reported_with_its_package() -> None:
    fake = sr.Requirement("element", "vigilnosuchelement", "gstreamer1.0-x", "a test")
    real = next(r for r in sr.REQUIREMENTS if r.name == "appsrc")
    absent = sr.missing([fake, real], sr.machine_probe([fake, real]))
    assert absent == [fake]
    assert "apt-get install -y --no-install-recommends gstreamer1.0-x" in sr.report(absent)
