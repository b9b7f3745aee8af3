"""What the printed label says and what its QR code carries (provisioning/label.py, pure)."""

from __future__ import annotations

from provisioning.label import beijing, dark_runs, label_for, label_lines, qr_payload
from provisioning.spec import device_spec, parse_camera
from provisioning.workspace import City, DeviceRecord

CODE = "62120200001180000007"


def _label(site: dict[str, str] | None = None, gb_code: str = CODE):  # type: ignore[no-untyped-def]
    cam = parse_camera("c1=rtsp://admin:cam-pw-9@192.0.2.1/s")
    spec = device_spec("nvr-sm-1", "wudu", "sm01", "nvr", [cam], gb_code)
    record = DeviceRecord(spec, "the-secret-token-value", "abcdef123456", 1_796_000_000_000_000)
    city = City("https://api", "inst", ["a:7443"], "enroll.city:7444")
    return label_for(record, city, site)


def test_the_label_names_device_code_site_and_expiry_in_chinese_first() -> None:
    lines = dict(label_lines(_label({"name": "石门村"})))
    assert lines["设备编号 Device"] == "nvr-sm-1"
    assert lines["国标编码 GB/T 28181"] == CODE
    assert lines["站点 Site"] == "石门村（sm01）"
    assert lines["类型 Kind"].startswith("边缘盒")
    assert lines["令牌有效期至 Token expires"] == f"{beijing(1_796_000_000_000_000)} 北京时间"
    assert beijing(0) == "1970-01-01 08:00"  # Asia/Shanghai
    bare = dict(label_lines(_label(None, "")))
    assert bare["国标编码 GB/T 28181"].startswith("未分配") and bare["站点 Site"] == "sm01"


def test_the_qr_code_carries_enrollment_info_and_no_secret() -> None:
    label = _label({"name": "石门村"})
    payload = qr_payload(label)
    assert payload == (
        f"VIGIL:nvr-sm-1;GB:{CODE};SITE:wudu/sm01;ENROLL:enroll.city:7444;TOKEN-FP:abcdef123456"
    )
    printed = payload + "".join(v for _, v in label_lines(label))
    for secret in ("the-secret-token-value", "cam-pw-9", "admin"):
        assert secret not in printed


def test_dark_modules_are_drawn_as_runs() -> None:
    assert dark_runs([1, 1, 0, 1, 0, 0, 1, 1, 1]) == [(0, 2), (3, 1), (6, 3)]
    assert dark_runs([0, 0]) == [] and dark_runs([]) == []
