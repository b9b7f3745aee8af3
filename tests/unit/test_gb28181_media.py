"""GB/T 28181 media and catalog decisions, pure: TS -> PS, RTP, codes, Catalog, registration."""

from __future__ import annotations

import struct

from controller.gb28181 import manscdp
from controller.gb28181.cascade import (
    RegisterPlan,
    Responder,
    footage_ranges,
    gb_time,
    merge_ranges,
    parse_gb_time,
)
from controller.gb28181.codes import Directory, Place, catalog_items, derive_codes, pages
from controller.gb28181.ps import (
    H264,
    H265,
    MAX_PES_PAYLOAD,
    AccessUnit,
    PsPacker,
    crc32_mpeg,
    is_keyframe,
)
from controller.gb28181.rtp import MAX_PAYLOAD, RtpPacketizer, frame_tcp, parse_rtp
from controller.gb28181.tsdemux import TsDemuxer

IDR = b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x01\x65" + b"\x11" * 3000
P_FRAME = b"\x00\x00\x00\x01\x41" + b"\x22" * 500


def _ts_packets(pid: int, payload: bytes, start: bool, rai: bool = False) -> list[bytes]:
    out, first = [], True
    while payload or first:
        head = bytes((0x47, (0x40 if start and first else 0) | (pid >> 8), pid & 0xFF))
        if first and rai:
            chunk = payload[:182]
            fill = 182 - len(chunk)
            adapt = bytes((1 + fill, 0x40)) + b"\xff" * fill
            out.append(head + b"\x30" + adapt + chunk)
        else:
            chunk = payload[:184]
            if len(chunk) < 184:
                fill = 184 - len(chunk) - 1
                adapt = bytes((fill,)) + (b"\x00" + b"\xff" * (fill - 1) if fill else b"")
                out.append(head + b"\x30" + adapt + chunk)
            else:
                out.append(head + b"\x10" + chunk)
        payload, first = payload[len(chunk) :], False
    return out


def _section(table_id: int, body: bytes) -> bytes:
    sec = bytes((table_id,)) + struct.pack(">H", 0xB000 | (len(body) + 4)) + body
    return b"\x00" + sec + struct.pack(">I", crc32_mpeg(sec))


def _pes(pts: int, data: bytes) -> bytes:
    t = bytes(
        (0x21 | ((pts >> 29) & 0x0E), (pts >> 22) & 0xFF, ((pts >> 14) & 0xFE) | 1,
         (pts >> 7) & 0xFF, ((pts << 1) & 0xFE) | 1)
    )  # fmt: skip
    return b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05" + t + data


def make_ts(stream_type: int, frames: list[tuple[int, bytes]]) -> bytes:
    pat = _section(0, b"\x00\x01\xc1\x00\x00\x00\x01\xf0\x00")
    es = bytes((stream_type,)) + b"\xe1\x00\xf0\x00"
    pmt = _section(2, b"\x00\x01\xc1\x00\x00\xe1\x00\xf0\x00" + es)
    out = _ts_packets(0, pat, True) + _ts_packets(0x1000, pmt, True)
    for pts, data in frames:
        out += _ts_packets(0x100, _pes(pts, data), True, rai=is_keyframe(H264, data))
    return b"".join(x.ljust(188, b"\xff") for x in out)


def test_ts_demux_gives_whole_frames_with_pts_across_any_chunking() -> None:
    ts = make_ts(H264, [(9000, IDR), (12600, P_FRAME), (16200, P_FRAME)])
    demux = TsDemuxer()
    units = []
    for i in range(0, len(ts), 100):  # chunks that cut packets anywhere
        units += demux.feed(ts[i : i + 100])
    units += demux.flush()
    assert [(u.pts, u.key, u.data) for u in units] == [
        (9000, True, IDR), (12600, False, P_FRAME), (16200, False, P_FRAME)
    ]  # fmt: skip
    junk = TsDemuxer()
    assert junk.feed(b"\x00" * 500 + ts[:188]) == [] and junk.errors >= 1


def test_ps_starts_at_a_keyframe_with_system_header_and_a_psm_naming_the_codec() -> None:
    packer = PsPacker()
    assert packer.pack(AccessUnit(H265, 0, None, False, b"\x00\x00\x01\x02\x01")) is None
    big = b"\x00\x00\x01\x40\x01" + b"\x33" * (MAX_PES_PAYLOAD + 10)
    ps = packer.pack(AccessUnit(H265, 90_000, 87_000, True, big))
    assert ps is not None and ps.startswith(b"\x00\x00\x01\xba")
    assert ps.count(b"\x00\x00\x01\xbb") == 1
    psm = ps[ps.index(b"\x00\x00\x01\xbc") :]
    length = struct.unpack(">H", psm[4:6])[0]
    assert crc32_mpeg(psm[: 6 + length]) == 0  # the CRC covers the PSM: remainder 0
    assert psm[12] == 0x24 and psm[13] == 0xE0  # H.265 on stream 0xE0
    assert ps.count(b"\x00\x00\x01\xe0") == 2  # split into two PES under 64 KiB
    first_pes = ps[ps.index(b"\x00\x00\x01\xe0") :]
    assert first_pes[7] == 0xC0  # PTS and DTS
    nxt = packer.pack(AccessUnit(H265, 93_600, None, False, b"\x00\x00\x01\x02\x01x"))
    assert nxt is not None and b"\x00\x00\x01\xbc" not in nxt and b"\x00\x00\x01\xbb" not in nxt
    audio = packer.pack(AccessUnit(0x90, 93_600, None, False, b"\xd5" * 320), 0x90)
    assert audio is not None and b"\x00\x00\x01\xc0" in audio


def test_rtp_cuts_a_frame_with_the_offered_ssrc_and_marks_its_end() -> None:
    rtp = RtpPacketizer(ssrc=100000001, payload_type=96, seq=65535)
    packets = rtp.packets_of(b"x" * (MAX_PAYLOAD * 2 + 5), 90_000)
    parsed = [parse_rtp(p) for p in packets]
    assert [p[1] for p in parsed] == [65535, 0, 1]
    assert {p[3] for p in parsed} == {100000001} and {p[2] for p in parsed} == {90_000}
    assert [p[0] for p in parsed] == [96, 96, 96]
    assert [bool(p[1] & 0x80) for p in packets] == [False, False, True]
    assert frame_tcp(packets[2])[:2] == struct.pack(">H", len(packets[2]))


PLACES = [
    Place("cam-1", "nvr-1", "wudu", "v001"),
    Place("cam-2", "nvr-1", "wudu", "v001"),
    Place("62122100001320000009", "nvr-2", "成县", "v002"),
    Place("cam-x", "nvr-3", "elsewhere", "s"),
]


def test_codes_are_20_digits_stable_and_keep_existing_gb_codes() -> None:
    coded = {c.place.camera_id: c for c in derive_codes(PLACES)}
    assert coded["62122100001320000009"].code == "62122100001320000009"
    assert coded["cam-1"].code.startswith("6212020000132") and len(coded["cam-1"].code) == 20
    assert coded["cam-x"].civil == "621200"
    assert coded["cam-1"].site_code == coded["cam-2"].site_code
    assert len({c.code for c in coded.values()}) == 4
    again = {
        c.place.camera_id: c.code for c in derive_codes([*PLACES, Place("z", "n", "wudu", "q")])
    }
    assert all(again[k] == v.code for k, v in coded.items())


def test_catalog_shows_only_visible_cameras_and_their_places_in_pages() -> None:
    directory = Directory.of(PLACES)
    visible = [c for c in directory.coded if c.place.camera_id in ("cam-1", "cam-2")]
    items = catalog_items(visible)
    assert [i.parental for i in items] == [True, True, True, False, False]
    assert {i.civil_code for i in items} == {"621200", "621202"}
    assert len(pages(items, 2)) == 3 and pages([], 10) == [[]]
    visible = frozenset({"cam-1"})
    responder = Responder("62120000002000000001", "V", directory, visible, lambda *_: [], 0, 2)
    q = manscdp.parse(b"<Query><CmdType>Catalog</CmdType><SN>3</SN><DeviceID>x</DeviceID></Query>")
    bodies = responder.answer(q)
    text = "".join(manscdp.decode(b) for b in bodies)
    assert len(bodies) == 2 and text.count("<SumNum>4</SumNum>") == 2
    assert directory.code_of("cam-1") in text and directory.code_of("cam-2") not in text


def test_record_info_in_local_time_and_unknown_codes_refused() -> None:
    directory = Directory.of(PLACES)
    code = directory.code_of("cam-1")
    t0 = parse_gb_time("2026-12-04T08:00:00")
    assert gb_time(t0) == "2026-12-04T08:00:00" and t0 % 1_000_000 == 0

    def ranges(camera: str, start: int, end: int) -> list[tuple[int, int]]:
        return merge_ranges([(t0, t0 + 10**7), (t0 + 10**7, t0 + 2 * 10**7)])

    responder = Responder("p", "Vigil", directory, frozenset({"cam-1"}), ranges, 0)
    body = (
        f"<Query><CmdType>RecordInfo</CmdType><SN>1</SN><DeviceID>{code}</DeviceID>"
        "<StartTime>2026-12-04T07:00:00</StartTime><EndTime>2026-12-04T09:00:00</EndTime></Query>"
    )
    text = manscdp.decode(responder.answer(manscdp.parse(body.encode()))[0])
    assert "<StartTime>2026-12-04T08:00:00</StartTime>" in text
    assert "<EndTime>2026-12-04T08:00:20</EndTime>" in text and "<SumNum>1</SumNum>" in text
    for other in (directory.code_of("cam-2"), "00000000000000000000"):
        try:
            responder.answer(manscdp.parse(body.replace(code, other).encode()))
        except Exception as exc:
            assert getattr(exc, "status", 0) == 404
        else:
            raise AssertionError("a camera out of scope was answered")


def test_register_plan_reregisters_before_expiry_and_after_the_upper_forgets_us() -> None:
    plan = RegisterPlan(expiry_s=3600, keepalive_s=60, max_missed=3)
    assert plan.register_due(0) and not plan.keepalive_due(0) and plan.next_due() == 0
    plan.registered_ok(0, 600)
    assert not plan.register_due(399) and plan.register_due(400)
    assert plan.next_due() == 60  # the keepalive comes first: the link sleeps until then
    assert plan.keepalive_due(60)
    plan.keepalive_sent(60)
    assert not plan.keepalive_lost(61) and not plan.keepalive_lost(62)
    assert plan.keepalive_lost(63) and plan.register_due(63)
    plan.registered_ok(100, 0)  # no Expires in the 200: our own
    assert plan.keepalive_answered(False, 101) and plan.register_due(101)  # 4xx: it restarted
    assert plan.register_failed(102, wrong_password=True) == 60.0
    assert plan.next_due() == 162  # unregistered: no keepalive is due, only the REGISTER
    waits = [plan.register_failed(200) for _ in range(8)]
    assert waits == sorted(waits) and max(waits) == 60.0


def test_record_info_merges_stored_footage_with_what_is_still_on_the_agent() -> None:
    directory = Directory.of(PLACES)
    code = directory.code_of("cam-1")
    t0 = parse_gb_time("2026-12-04T08:00:00")
    stored = [(t0, t0 + 10**7)]
    buffered = [(t0 + 10**7, t0 + 2 * 10**7), (t0 + 60 * 10**6, t0 + 70 * 10**6)]
    assert footage_ranges(stored, buffered) == [(t0, t0 + 2 * 10**7), buffered[1]]
    responder = Responder(
        "p", "Vigil", directory, frozenset({"cam-1"}), lambda *_: stored, 0,
        on_device=lambda *_: buffered,
    )  # fmt: skip
    body = (
        f"<Query><CmdType>RecordInfo</CmdType><SN>1</SN><DeviceID>{code}</DeviceID>"
        "<StartTime>2026-12-04T07:00:00</StartTime><EndTime>2026-12-04T09:00:00</EndTime></Query>"
    )
    text = manscdp.decode(responder.answer(manscdp.parse(body.encode()))[0])
    assert "<SumNum>2</SumNum>" in text and "<EndTime>2026-12-04T08:00:20</EndTime>" in text
    assert "<StartTime>2026-12-04T08:01:00</StartTime>" in text
