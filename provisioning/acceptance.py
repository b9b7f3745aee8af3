"""Site acceptance, judged (pure): the controller's facts in, a pass/fail table out.

`judge` turns `GET /api/v1/install/devices/{id}/acceptance` into rows of (check, passed, what
was seen, what to fix), with each camera's frame rate (as its agent measures it) held against
the rate the installer said it is set to (`device add --fps`, discover's ONVIF FrameRateLimit,
the CSV) within `FPS_TOLERANCE`, or at least `FPS_FLOOR` when none was given; `render` prints
them in Chinese (default) or English. The installer leaves the site only when every row passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CLOCK_TOLERANCE_S = 2.0
FRAME_AGE_MAX_S = 10.0
SEEN_WITHIN_S = 120.0
FPS_TOLERANCE = 0.15  # measured within ±15 % of the expected rate
FPS_FLOOR = 5.0  # no expected rate given: at least this much

TEXT = {
    "zh": {
        "enrolled": "已注册证书",
        "online": "MQTT 上线（birth）",
        "camera": "摄像机 {cam} 出帧",
        "segment": "摄像机 {cam} 测试片段已上传且哈希校验通过",
        "rate": "摄像机 {cam} 帧率",
        "fix_rate_low": "帧率偏低：检查摄像机编码设置（帧率）、码流与网络带宽",
        "fix_rate_high": "帧率高于设定：在摄像机上改回设定帧率，或用 --fps 登记实际帧率",
        "fix_rate_none": "没有帧率数据：等代理上报（约半分钟）后重试",
        "clock": "时钟偏差",
        "pass": "通过",
        "fail": "失败",
        "fix_enrolled": "查看设备上 /var/lib/vigil-agent/enrollment.json；网络不通时代理会自动重试",
        "fix_retired": "该设备已退役：用新设备编号 device replace",
        "fix_online": "检查 MQTT 地址与网络；systemctl status vigil-agent",
        "fix_camera": "检查摄像机电源、网线、RTSP 地址与密码（cameras.secret）",
        "fix_segment": "等待第一个片段上传（约一分钟）；检查上行链路",
        "fix_hash": "城市端哈希不符：联系运维，勿离开现场",
        "fix_clock": "开启 NTP（timedatectl set-ntp true）",
        "header": "检查项",
        "result": "结果",
        "seen": "实际情况",
        "todo": "处理办法",
        "verdict_ok": "验收通过，可以离场。",
        "verdict_bad": "验收未通过：按上表处理后重新运行 verify。",
    },
    "en": {
        "enrolled": "certificate enrolled",
        "online": "MQTT birth seen (online)",
        "camera": "camera {cam} producing frames",
        "segment": "camera {cam} test segment uploaded, hash checked at the city",
        "rate": "camera {cam} frame rate",
        "fix_rate_low": "frame rate too low: check the camera's encoder settings (frame rate), "
        "bitrate and the link",
        "fix_rate_high": "frame rate above the set one: set the camera back, or register the "
        "actual rate with --fps",
        "fix_rate_none": "no frame rate reported yet: wait for the agent (about 30 s) and retry",
        "clock": "clock offset",
        "pass": "PASS",
        "fail": "FAIL",
        "fix_enrolled": "see /var/lib/vigil-agent/enrollment.json on the device; it retries "
        "by itself while the city is unreachable",
        "fix_retired": "this device is retired: use device replace with a new id",
        "fix_online": "check the MQTT address and the link; systemctl status vigil-agent",
        "fix_camera": "check the camera's power, cable, RTSP URL and password (cameras.secret)",
        "fix_segment": "wait for the first segment (about a minute); check the uplink",
        "fix_hash": "hash mismatch at the city: call operations, do not leave",
        "fix_clock": "turn on NTP (timedatectl set-ntp true)",
        "header": "check",
        "result": "result",
        "seen": "seen",
        "todo": "what to do",
        "verdict_ok": "Accepted: you may leave the site.",
        "verdict_bad": "Not accepted: fix the rows above and run verify again.",
    },
}


@dataclass(frozen=True)
class Row:
    key: str
    camera: str
    passed: bool
    seen: str
    fix: str  # a TEXT key, "" when passed


def rate_row(camera: str, fps: Any, expected: float) -> Row:
    """The frame-rate row of one camera: `fps` as reported (None/0: nothing measured)."""
    want = f"{expected:g}" if expected else f">={FPS_FLOOR:g}"
    if not isinstance(fps, int | float) or isinstance(fps, bool) or fps <= 0:
        return Row("rate", camera, False, f"- / {want} fps", "fix_rate_none")
    seen = f"{float(fps):.1f} / {want} fps"
    if not expected:
        ok = fps >= FPS_FLOOR
        return Row("rate", camera, ok, seen, "" if ok else "fix_rate_low")
    if fps < expected * (1 - FPS_TOLERANCE):
        return Row("rate", camera, False, seen, "fix_rate_low")
    if fps > expected * (1 + FPS_TOLERANCE):
        return Row("rate", camera, False, seen, "fix_rate_high")
    return Row("rate", camera, True, seen, "")


def judge(
    facts: dict[str, Any], now_us: int, expected_fps: dict[str, float] | None = None
) -> list[Row]:
    """`expected_fps`: camera id -> the rate it is set to (absent: the floor applies)."""
    rows: list[Row] = []
    expected_fps = expected_fps or {}
    if facts.get("retired"):
        rows.append(Row("enrolled", "", False, "retired", "fix_retired"))
    else:
        ok = bool(facts.get("enrolled"))
        rows.append(Row("enrolled", "", ok, "yes" if ok else "no", "" if ok else "fix_enrolled"))
    seen_s = (now_us - int(facts.get("last_seen_us") or 0)) / 1e6
    online = facts.get("online") is True and seen_s <= SEEN_WITHIN_S
    rows.append(
        Row("online", "", online, f"online={facts.get('online')} {seen_s:.0f}s ago"[:60],
            "" if online else "fix_online")
    )  # fmt: skip
    for cam in facts.get("cameras") or []:
        cid = str(cam.get("camera_id"))
        age = cam.get("frame_age_s")
        frames = cam.get("state") == "streaming" and age is not None and age <= FRAME_AGE_MAX_S
        seen = f"{cam.get('state') or 'never reported'}, frame age {age}"
        rows.append(Row("camera", cid, frames, seen, "" if frames else "fix_camera"))
        rows.append(rate_row(cid, cam.get("fps"), expected_fps.get(cid, 0.0)))
        hash_ok = cam.get("hash_ok")
        fix = "" if hash_ok else ("fix_hash" if hash_ok is False else "fix_segment")
        rows.append(Row("segment", cid, hash_ok is True, f"{cam.get('segments')} segments", fix))
    offset = facts.get("clock_offset_s")
    good = offset is not None and abs(float(offset)) <= CLOCK_TOLERANCE_S
    seen = "unknown" if offset is None else f"{float(offset):+.2f} s"
    rows.append(Row("clock", "", good, seen, "" if good else "fix_clock"))
    return rows


def render(rows: list[Row], lang: str = "zh") -> str:
    t = TEXT[lang]
    lines = [f"{t['header']} | {t['result']} | {t['seen']} | {t['todo']}"]
    for r in rows:
        name = t[r.key].format(cam=r.camera)
        result = t["pass"] if r.passed else t["fail"]
        lines.append(f"{name} | {result} | {r.seen} | {t[r.fix] if r.fix else ''}")
    lines.append(t["verdict_ok"] if all(r.passed for r in rows) else t["verdict_bad"])
    return "\n".join(lines) + "\n"
