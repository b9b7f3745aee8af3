"""The install check's pure part: which requirements are missing, which packages fix them."""

from __future__ import annotations

from tests.system_requirements_loader import load

sr = load()


def test_every_camera_element_is_in_the_table_with_its_package() -> None:
    by_name = {r.name: r.package for r in sr.REQUIREMENTS if r.kind == "element"}
    # The two that a no-recommends plugins-base install lacks (issue 9, part 1).
    assert by_name["textoverlay"] == "gstreamer1.0-x"
    assert by_name["timeoverlay"] == "gstreamer1.0-x"
    assert by_name["x265enc"] == "gstreamer1.0-plugins-bad"
    assert by_name["x264enc"] == "gstreamer1.0-plugins-ugly"


def test_missing_keeps_table_order_and_packages_are_deduplicated() -> None:
    reqs = [
        r for r in sr.REQUIREMENTS if r.name in {"textoverlay", "timeoverlay", "x264enc", "ffmpeg"}
    ]
    absent = sr.missing(reqs, lambda r: r.name == "ffmpeg")
    assert [r.name for r in absent] == ["textoverlay", "timeoverlay", "x264enc"]
    assert sr.packages_for(absent) == ["gstreamer1.0-x", "gstreamer1.0-plugins-ugly"]


def test_report_names_each_piece_and_the_install_command() -> None:
    absent = [r for r in sr.REQUIREMENTS if r.name in {"textoverlay", "zh"}]
    text = sr.report(absent)
    assert "missing element 'textoverlay' (package gstreamer1.0-x)" in text
    assert "missing font 'zh' (package fonts-noto-cjk)" in text
    assert text.splitlines()[-1] == (
        "install with: sudo apt-get install -y --no-install-recommends "
        "gstreamer1.0-x fonts-noto-cjk"
    )
    assert sr.report([]) == "all system requirements are present"


def test_multi_package_requirements_split_into_packages() -> None:
    gi = [r for r in sr.REQUIREMENTS if r.kind == "gi"]
    assert "gir1.2-gst-rtsp-server-1.0" in sr.packages_for(gi)
    assert "python3-gi" in sr.packages_for(gi)


def test_every_element_the_camera_emulator_checks_for_is_in_the_table() -> None:
    """The emulator names the elements its profiles need; the install check must cover them all,
    or a fresh machine installs too little and the camera tests fail one by one."""
    from vigil_camsim import gst_server

    needed = set(gst_server.BASE_ELEMENTS)
    for group in (gst_server.VIDEO_ELEMENTS, gst_server.AUDIO_ELEMENTS):
        for names in group.values():
            needed.update(names)
    table = {r.name for r in sr.REQUIREMENTS if r.kind == "element"}
    assert needed - table == set()
