"""A GB/T 28181 channel's own state (issue 17 part 2): its Catalog `Status` as read
(controller/gb28181/manscdp.py), the rule that judges it with its device's state
(controller/gb28181/devstate.py), when the catalog is asked again, and what an upper platform
is told of it (controller/gb28181/cascade.py)."""

from __future__ import annotations

import pytest

from controller.gb28181 import manscdp
from controller.gb28181.cascade import Responder
from controller.gb28181.codes import Directory, Place
from controller.gb28181.devstate import (
    CATALOG_NOTIFY_GAP_S,
    CATALOG_OFF,
    DEVICE_OFFLINE,
    ChannelState,
    DeviceState,
    catalog_due,
    channel_states,
    judge_channel,
)
from controller.gb28181.manscdp import OFF, ON, UNKNOWN, channel_status

DEV = "62120200001110000001"
CH1, CH2, CH3 = "62120200001310000001", "62120200001310000002", "62120200001310000003"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("ON", ON), ("OFF", OFF), ("ONLINE", ON), ("OFFLINE", OFF),
        ("on", ON), ("off", OFF), ("Online", ON), ("OffLine", OFF), (" OFF\n", OFF),
    ],
)  # fmt: skip
def test_status_words_real_nvrs_send_are_read_in_any_case(text: str, kept: str) -> None:
    assert channel_status(text) == (kept, False)


def test_a_missing_status_is_unknown_and_garbage_is_unknown_and_said() -> None:
    assert channel_status(None) == (UNKNOWN, False)  # optional field: nothing to say
    assert channel_status("  ") == (UNKNOWN, False)
    for garbage in ("BROKEN", "0", "1", "OK", "ON OFF", "ONN", "O" * 10_000, "开"):
        assert channel_status(garbage) == (UNKNOWN, True), garbage


PAGE = """<?xml version="1.0" encoding="GB2312"?>
<Response><CmdType>Catalog</CmdType><SN>7</SN><DeviceID>{dev}</DeviceID><SumNum>4</SumNum>
<DeviceList Num="4">
<Item><DeviceID>{ch1}</DeviceID><Name>a</Name><Parental>0</Parental><Status>OFFLINE</Status></Item>
<Item><DeviceID>{ch2}</DeviceID><Name>b</Name><Parental>0</Parental><Status>{st2}</Status></Item>
<Item><DeviceID>{ch3}</DeviceID><Name>c</Name><Parental>0</Parental></Item>
<Item><DeviceID>62120000002160000001</DeviceID><Name>组</Name><Parental>1</Parental></Item>
</DeviceList></Response>"""


def test_a_catalog_page_keeps_each_status_and_names_the_unreadable_ones() -> None:
    body = PAGE.format(dev=DEV, ch1=CH1, ch2=CH2, ch3=CH3, st2="online").encode("gb18030")
    page = manscdp.parse_catalog_answer(body)
    assert [(c.code, c.status) for c in page.items] == [
        (CH1, OFF), (CH2, ON), (CH3, UNKNOWN), ("62120000002160000001", UNKNOWN),
    ]  # fmt: skip
    assert page.odd_status == ()
    long = "X" * 20_000  # inside the 32 KiB body limit: only the field is oversize
    page = manscdp.parse_catalog_answer(
        PAGE.format(dev=DEV, ch1=CH1, ch2=CH2, ch3=CH3, st2=long).encode("gb18030")
    )
    assert page.items[1].status == UNKNOWN
    assert page.odd_status == ((CH2, "X" * manscdp.MAX_STATUS_CHARS),)  # logged cut short


def test_a_whole_page_over_the_body_limit_is_refused_413() -> None:
    body = PAGE.format(dev=DEV, ch1=CH1, ch2=CH2, ch3=CH3, st2="X" * 40_000).encode("gb18030")
    with pytest.raises(manscdp.XmlError) as err:
        manscdp.parse_catalog_answer(body)
    assert err.value.status == 413


ONLINE, GONE = DeviceState(True, ""), DeviceState(False, "no keepalive for 300 s")
NEVER = DeviceState(None, "never registered")


def test_a_channel_reported_off_by_an_online_device_is_offline_with_why() -> None:
    assert judge_channel(ONLINE, OFF) == ChannelState(False, CATALOG_OFF)
    assert judge_channel(ONLINE, ON) == ChannelState(True, "")
    assert judge_channel(ONLINE, UNKNOWN) == ChannelState(True, "")  # says nothing: device's


def test_a_channel_of_an_offline_device_is_offline_whatever_its_status_said() -> None:
    for status in (ON, OFF, UNKNOWN):
        assert judge_channel(GONE, status) == ChannelState(
            False, DEVICE_OFFLINE, "no keepalive for 300 s"
        )
        assert judge_channel(NEVER, status).online is None


def test_channel_states_judge_each_channel_with_its_own_device() -> None:
    devices = {DEV: ONLINE, "62120200001110000002": GONE}
    channels = {
        CH1: (DEV, OFF), CH2: (DEV, ON), CH3: ("62120200001110000002", ON),
        "62120200001310000009": ("62120200001110000009", ON),  # a device not judged: left out
    }  # fmt: skip
    states = channel_states(devices, channels)
    assert {k: v.online for k, v in states.items()} == {CH1: False, CH2: True, CH3: False}


def test_the_catalog_is_asked_again_on_notify_and_on_keepalive_cadence() -> None:
    assert catalog_due(None, 5.0, 600.0, notified=False)  # never asked here
    assert not catalog_due(100.0, 100.0 + 599.0, 600.0, notified=False)
    assert catalog_due(100.0, 100.0 + 600.0, 600.0, notified=False)
    assert catalog_due(100.0, 100.0 + CATALOG_NOTIFY_GAP_S, 600.0, notified=True)
    assert not catalog_due(100.0, 100.0 + CATALOG_NOTIFY_GAP_S / 2, 600.0, notified=True)


PLACES = [Place(CH1, DEV, "wudu", "v001"), Place(CH2, DEV, "wudu", "v001")]


def test_an_upper_platform_is_told_a_channel_reported_off_is_off() -> None:
    directory = Directory.of(PLACES)
    visible = frozenset({CH1, CH2})
    responder = Responder("62120000002000000001", "V", directory, visible, lambda *_: [], 0, 10,
                          offline=frozenset({CH2}))  # fmt: skip
    q = manscdp.parse(b"<Query><CmdType>Catalog</CmdType><SN>3</SN><DeviceID>x</DeviceID></Query>")
    text = "".join(manscdp.decode(b) for b in responder.answer(q))
    items = {i.split("</DeviceID>")[0]: i for i in text.split("<Item><DeviceID>")[1:]}
    assert "<Status>ON</Status>" in items[CH1]
    assert "<Status>OFF</Status>" in items[CH2]
    for code, online in ((CH1, "ONLINE"), (CH2, "OFFLINE")):
        body = f"<Query><CmdType>DeviceStatus</CmdType><SN>4</SN><DeviceID>{code}</DeviceID>"
        body += "</Query>"
        answer = manscdp.decode(responder.answer(manscdp.parse(body.encode()))[0])
        assert f"<Online>{online}</Online>" in answer, answer
