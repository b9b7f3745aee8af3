"""Pure parts of vigil-provision and the agent's credentials file: camera specs, the batch
CSV's per-row verdicts, agent.toml without secrets, the acceptance table."""

from __future__ import annotations

import pytest

from edge_agent.credentials import CredentialsError, merge
from provisioning.acceptance import judge, render
from provisioning.bundle import agent_toml, credentials_toml, label_payload
from provisioning.spec import SpecError, device_spec, parse_camera, parse_rows
from provisioning.workspace import City, DeviceRecord

NOW = 1_800_000_000_000_000


def test_camera_credentials_are_split_off_the_url() -> None:
    cam = parse_camera("cam-1=rtsp://admin:p%40ss@192.0.2.1:554/Streaming/1")
    assert cam.url == "rtsp://192.0.2.1:554/Streaming/1"
    assert (cam.username, cam.password) == ("admin", "p@ss")
    assert "p@ss" not in repr(cam)
    folder = parse_camera("ch2=nvr:/mnt/nvr/ch2")
    assert (folder.kind, folder.path) == ("nvr_folder", "/mnt/nvr/ch2")
    for bad in ("cam-1", "cam 1=rtsp://h/x", "c=http://h/x", "c=nvr:relative"):
        with pytest.raises(SpecError):
            parse_camera(bad)


def test_batch_rows_are_judged_one_by_one() -> None:
    text = (
        "device_id,county,site,kind,cameras\n"
        "nvr-1,wudu,v1,nvr,c1=rtsp://u:p@h/s;c2=nvr:/d\n"
        "nvr 2,wudu,v1,nvr,\n"
        "nvr-1,wudu,v1,nvr,\n"
        "nvr-3,wudu,v1,nvr,c1=rtsp://h/a;c1=rtsp://h/b\n"
    )
    good, bad = parse_rows(text)
    assert [g.device_id for g in good] == ["nvr-1"]
    assert [n for n, _ in bad] == [3, 4, 5]
    assert "appears twice" in bad[1][1] and "camera id appears twice" in bad[2][1]
    assert parse_rows("a,b\n1,2\n") == ([], [(1, "header lacks column(s): device_id, county, "
                                                 "site, kind, cameras")])  # fmt: skip


def _record() -> tuple[DeviceRecord, City]:
    spec = device_spec("nvr-1", "wudu", "v1", "nvr", [parse_camera("c1=rtsp://adm:pw9@h/s")])
    city = City("https://api", "inst", ["a:7443", "b:7443"], "a:7444", "mq", 1883)
    return DeviceRecord(spec, "tok-secret", "abcdef123456", NOW), city


def test_agent_toml_holds_no_secret_and_the_credentials_file_does() -> None:
    record, city = _record()
    text = agent_toml(record, city)
    assert "pw9" not in text and "adm" not in text and "tok-secret" not in text
    assert 'controllers = ["a:7443", "b:7443"]' in text
    assert 'camera_credentials_file = "cameras.secret"' in text
    assert 'password = "pw9"' in credentials_toml(record.spec.cameras)
    assert "tok-secret" not in label_payload(record) and "abcdef123456" in label_payload(record)


def test_credentials_merge_into_urls_and_refuse_ambiguity() -> None:
    urls = {"c1": "rtsp://h:554/s", "c2": "rtsp://u:x@h/s"}
    got = merge(urls, {"c1": {"username": "a b", "password": "p@:"}}, "f")
    assert got["c1"] == "rtsp://a%20b:p%40%3A@h:554/s"
    for creds, words in [
        ({"c9": {"username": "a"}}, "unconfigured"),
        ({"c2": {"username": "a"}}, "already carries"),
        ({"c1": {"password": "p"}}, "needs username"),
    ]:
        with pytest.raises(CredentialsError, match=words):
            merge(urls, creds, "f")


def test_acceptance_table_passes_only_when_everything_does() -> None:
    facts = {
        "enrolled": True, "retired": False, "online": True, "last_seen_us": NOW - 5_000_000,
        "clock_offset_s": 0.4,
        "cameras": [{"camera_id": "c1", "state": "streaming", "frame_age_s": 0.5,
                     "fps": 24.8, "segments": 3, "hash_ok": True}],
    }  # fmt: skip
    rows = judge(facts, NOW)
    assert all(r.passed for r in rows)
    assert "验收通过" in render(rows) and "Accepted" in render(rows, "en")
    bad = {**facts, "clock_offset_s": 5.0, "online": False}
    bad["cameras"] = [{"camera_id": "c1", "state": "disconnected", "frame_age_s": None,
                       "segments": 0, "hash_ok": None}]  # fmt: skip
    table = render(judge(bad, NOW), "en")
    assert table.count("FAIL") == 5 and "turn on NTP" in table and "Not accepted" in table
    assert "退役" in render(judge({**facts, "retired": True}, NOW))


def test_a_daily_timer_renews_the_certificate_without_a_token() -> None:
    from provisioning.bundle import renew_units

    _, city = _record()
    units = renew_units(city)
    timer, service = units["vigil-agent-renew.timer"], units["vigil-agent-renew.service"]
    assert "OnUnitActiveSec=1d" in timer and "RandomizedDelaySec" in timer
    assert "vigil-agent enroll" in service and "--token-file" not in service
    assert "ExecStartPost=+" in service and "try-restart vigil-agent.service" in service
