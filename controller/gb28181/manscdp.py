"""MANSCDP XML bodies (GB/T 28181 §A.2): parse queries, build answers and notifications. Pure.

Encodings: platforms declare GB2312 (sometimes GBK or GB18030) and send GBK bytes; expat
cannot decode multi-byte legacy encodings, so the body is decoded here first (GB18030 is a
superset of all three) and the declaration dropped before parsing. Answers declare GB2312 and
are encoded GB18030: identical bytes for every GB2312 character, and a rare character in a
village name still encodes instead of failing the whole page.

Safety: bodies over `MAX_XML_BYTES` and any DOCTYPE/ENTITY declaration are refused before
expat sees them (no entity expansion, no external entities), so defusedxml is not needed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MAX_XML_BYTES = 32 * 1024
DECLARATION = '<?xml version="1.0" encoding="GB2312"?>\r\n'
_DECL = re.compile(rb"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9_-]+)["']""", re.IGNORECASE)


class XmlError(ValueError):
    """The body cannot be used; `status` is the SIP response to give (400, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Query:
    """A Query, Control or Notify body: its root, CmdType, SN, DeviceID and other fields."""

    root: str
    cmd_type: str
    sn: str
    device_id: str
    fields: Mapping[str, str] = field(default_factory=dict)


def decode(body: bytes) -> str:
    if len(body) > MAX_XML_BYTES:
        raise XmlError(413, f"XML body of {len(body)} bytes is over {MAX_XML_BYTES}")
    decl = _DECL.match(body[:200])
    m = _ENCODING.search(decl.group(0)) if decl else None
    declared = m.group(1).decode("ascii").lower() if m else "utf-8"
    codec = "gb18030" if declared in ("gb2312", "gbk", "gb18030", "gb_2312-80") else declared
    try:
        text = body.decode(codec)
    except (LookupError, UnicodeDecodeError):
        try:
            text = body.decode("gb18030")  # declared UTF-8 but sent GBK: common, harmless
        except UnicodeDecodeError as exc:
            raise XmlError(400, f"body is not valid {declared}: {exc.reason}") from None
    return re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)


def _root(body: bytes) -> ET.Element:
    text = decode(body)
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise XmlError(400, "DOCTYPE and ENTITY declarations are not accepted")
    try:
        root = ET.fromstring(text)  # noqa: S314 - size-capped, DOCTYPE/ENTITY refused above
    except ET.ParseError as exc:
        raise XmlError(400, f"malformed XML: {exc}") from None
    return root


def parse(body: bytes) -> Query:
    root = _root(body)
    fields = {child.tag: (child.text or "").strip() for child in root if len(child) == 0}
    cmd = fields.get("CmdType", "")
    if not cmd:
        raise XmlError(400, f"<{root.tag}> has no CmdType")
    return Query(root.tag, cmd, fields.get("SN", ""), fields.get("DeviceID", ""), fields)


def _build(root: str, pairs: Sequence[tuple[str, str]], extra: ET.Element | None = None) -> bytes:
    top = ET.Element(root)
    for tag, value in pairs:
        ET.SubElement(top, tag).text = value
    if extra is not None:
        top.append(extra)
    return DECLARATION.encode("ascii") + ET.tostring(top, encoding="unicode").encode("gb18030")


def keepalive(sn: int, device_id: str) -> bytes:
    pairs = [("CmdType", "Keepalive"), ("SN", str(sn)), ("DeviceID", device_id), ("Status", "OK")]
    return _build("Notify", pairs)


def media_status(sn: int, device_id: str) -> bytes:
    """Notify 121: a Playback/Download stream reached its end (GB/T 28181 §9.8.2)."""
    pairs = [
        ("CmdType", "MediaStatus"),
        ("SN", str(sn)),
        ("DeviceID", device_id),
        ("NotifyType", "121"),
    ]
    return _build("Notify", pairs)


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """One catalog entry: a camera (parental 0) or an organisation node (parental 1)."""

    device_id: str
    name: str
    parent_id: str
    civil_code: str
    parental: bool = False
    online: bool = True
    business_group: str = ""


def catalog_page(
    sn: str, device_id: str, total: int, items: Sequence[CatalogItem], manufacturer: str = "Vigil"
) -> bytes:
    listing = ET.Element("DeviceList", {"Num": str(len(items))})
    for it in items:
        node = ET.SubElement(listing, "Item")
        pairs = [("DeviceID", it.device_id), ("Name", it.name)]
        if not it.parental:
            pairs += [
                ("Manufacturer", manufacturer),
                ("Model", "IPC"),
                ("Owner", "Owner"),
            ]
        pairs += [("CivilCode", it.civil_code)]
        if it.business_group:
            pairs.append(("BusinessGroupID", it.business_group))
        pairs += [
            ("Address", ""),
            ("Parental", "1" if it.parental else "0"),
            ("ParentID", it.parent_id),
            ("SafetyWay", "0"),
            ("RegisterWay", "1"),
            ("Secrecy", "0"),
            ("Status", "ON" if it.online else "OFF"),
        ]
        for tag, value in pairs:
            ET.SubElement(node, tag).text = value
    head = [("CmdType", "Catalog"), ("SN", sn), ("DeviceID", device_id), ("SumNum", str(total))]
    return _build("Response", head, listing)


def device_info(sn: str, device_id: str, name: str, channels: int) -> bytes:
    pairs = [
        ("CmdType", "DeviceInfo"),
        ("SN", sn),
        ("DeviceID", device_id),
        ("DeviceName", name),
        ("Result", "OK"),
        ("Manufacturer", "Vigil"),
        ("Model", "Vigil city platform"),
        ("Firmware", "0.1.0"),
        ("Channel", str(channels)),
    ]
    return _build("Response", pairs)


def device_status(sn: str, device_id: str, online: bool, device_time: str) -> bytes:
    pairs = [
        ("CmdType", "DeviceStatus"),
        ("SN", sn),
        ("DeviceID", device_id),
        ("Result", "OK"),
        ("Online", "ONLINE" if online else "OFFLINE"),
        ("Status", "OK" if online else "ERROR"),
        ("Encode", "ON"),
        ("Record", "ON"),
        ("DeviceTime", device_time),
    ]
    return _build("Response", pairs)


@dataclass(frozen=True, slots=True)
class RecordItem:
    start: str  # GB time text, local (Asia/Shanghai): 2026-12-04T07:00:00
    end: str
    file_path: str = ""


def record_info(
    sn: str, device_id: str, name: str, total: int, items: Sequence[RecordItem]
) -> bytes:
    listing = ET.Element("RecordList", {"Num": str(len(items))})
    for it in items:
        node = ET.SubElement(listing, "Item")
        for tag, value in (
            ("DeviceID", device_id),
            ("Name", name),
            ("FilePath", it.file_path or f"{device_id}-{it.start}"),
            ("Address", ""),
            ("StartTime", it.start),
            ("EndTime", it.end),
            ("Secrecy", "0"),
            ("Type", "time"),
        ):
            ET.SubElement(node, tag).text = value
    head = [
        ("CmdType", "RecordInfo"),
        ("SN", sn),
        ("DeviceID", device_id),
        ("Name", name),
        ("SumNum", str(total)),
    ]
    return _build("Response", head, listing)


def query(cmd_type: str, sn: int, device_id: str, extra: Sequence[tuple[str, str]] = ()) -> bytes:
    """A Query Vigil sends a device (Catalog, DeviceInfo, RecordInfo ...)."""
    pairs = [("CmdType", cmd_type), ("SN", str(sn)), ("DeviceID", device_id), *extra]
    return _build("Query", pairs)


ON, OFF, UNKNOWN = "on", "off", "unknown"  # a channel's Catalog Status, as Vigil keeps it
_STATUS = {"ON": ON, "ONLINE": ON, "OFF": OFF, "OFFLINE": OFF}
MAX_STATUS_CHARS = 16  # longer is not a status word (what is logged of it is cut too)


def channel_status(text: str | None) -> tuple[str, bool]:
    """A Catalog item's `<Status>` as kept (ON, OFF or UNKNOWN) and whether the text was
    unreadable (the caller logs it). GB/T 28181-2016 says ON/OFF; real NVRs also send
    ONLINE/OFFLINE, in any case, with spaces. Missing or empty is unknown, not a problem
    (the field is optional); anything else is unknown too, never a guess either way."""
    if text is None or not text.strip():
        return UNKNOWN, False
    word = text.strip().upper()
    if len(word) > MAX_STATUS_CHARS or word not in _STATUS:
        return UNKNOWN, True
    return _STATUS[word], False


@dataclass(frozen=True, slots=True)
class Channel:
    """One item of a device's Catalog answer."""

    code: str
    name: str
    parent_id: str = ""
    status: str = UNKNOWN  # ON, OFF or UNKNOWN (`channel_status`)
    parental: bool = False
    manufacturer: str = ""
    model: str = ""


def video_channels(device_id: str, items: Sequence[Channel]) -> list[Channel]:
    """The items of a device's Catalog answer that are its cameras (not organisations,
    not the device itself)."""
    return [c for c in items if not c.parental and c.code != device_id]


@dataclass(frozen=True, slots=True)
class CatalogAnswer:
    sn: str
    device_id: str
    total: int  # SumNum: items over all pages
    items: tuple[Channel, ...]
    odd_status: tuple[tuple[str, str], ...] = ()  # (code, text cut short): unreadable Status


MAX_CATALOG_ITEMS = 4096  # one device's channels over all pages (a 256-channel NVR is large)


def parse_catalog_answer(body: bytes) -> CatalogAnswer:
    """A device's Response/Catalog page; XmlError (400) when it is not one."""
    root = _root(body)
    head = {child.tag: (child.text or "").strip() for child in root if len(child) == 0}
    if root.tag != "Response" or head.get("CmdType") != "Catalog":
        raise XmlError(400, "not a Catalog Response")
    total_text = head.get("SumNum", "0")
    if not total_text.isdigit() or int(total_text) > MAX_CATALOG_ITEMS:
        raise XmlError(400, f"SumNum {total_text[:12]!r} is not a count up to {MAX_CATALOG_ITEMS}")
    items: list[Channel] = []
    odd: list[tuple[str, str]] = []
    listing = root.find("DeviceList")
    for node in listing.findall("Item") if listing is not None else []:
        f = {child.tag: (child.text or "").strip() for child in node}
        code = f.get("DeviceID", "")
        if not (len(code) == 20 and code.isdigit()):
            raise XmlError(400, f"catalog item code {code[:24]!r} is not 20 digits")
        status, unreadable = channel_status(f.get("Status"))
        if unreadable:
            odd.append((code, f.get("Status", "")[:MAX_STATUS_CHARS]))
        items.append(
            Channel(
                code=code,
                name=f.get("Name", "")[:128] or code,
                parent_id=f.get("ParentID", ""),
                status=status,
                parental=f.get("Parental", "0") == "1",
                manufacturer=f.get("Manufacturer", "")[:64],
                model=f.get("Model", "")[:64],
            )
        )
    sn, device = head.get("SN", ""), head.get("DeviceID", "")
    return CatalogAnswer(sn, device, int(total_text), tuple(items), tuple(odd))


EVENTS = ("ON", "OFF", "VLOST", "DEFECT", "ADD", "DEL", "UPDATE")  # GB/T 28181-2016 §A.2.5


@dataclass(frozen=True, slots=True)
class CatalogEvent:
    """One item of a Catalog NOTIFY: what happened (`EVENTS`) to the channel `channel.code`;
    for ADD and UPDATE the item's catalog fields (`channel`), otherwise only the code."""

    event: str
    channel: Channel


@dataclass(frozen=True, slots=True)
class CatalogNotify:
    sn: str
    device_id: str
    events: tuple[CatalogEvent, ...]
    odd: tuple[tuple[str, str], ...] = ()  # (code, Event text cut short): not understood


def parse_catalog_notify(body: bytes) -> CatalogNotify:
    """A device's Notify/Catalog (what changed in its catalog, §9.11.1); XmlError (400, 413)
    when it is not one. An item with an unknown `Event` is listed in `odd` (the caller logs
    it) and otherwise ignored: a change Vigil cannot read is not guessed at."""
    root = _root(body)
    head = {child.tag: (child.text or "").strip() for child in root if len(child) == 0}
    if root.tag != "Notify" or head.get("CmdType") != "Catalog":
        raise XmlError(400, "not a Catalog Notify")
    listing = root.find("DeviceList")
    nodes = listing.findall("Item") if listing is not None else []
    if len(nodes) > MAX_CATALOG_ITEMS:
        raise XmlError(413, f"Catalog Notify of {len(nodes)} items is over {MAX_CATALOG_ITEMS}")
    events: list[CatalogEvent] = []
    odd: list[tuple[str, str]] = []
    for node in nodes:
        f = {child.tag: (child.text or "").strip() for child in node}
        code = f.get("DeviceID", "")
        if not (len(code) == 20 and code.isdigit()):
            raise XmlError(400, f"catalog item code {code[:24]!r} is not 20 digits")
        event = f.get("Event", "").strip().upper()
        if event not in EVENTS:
            odd.append((code, f.get("Event", "")[:MAX_STATUS_CHARS]))
            continue
        status, _unreadable = channel_status(f.get("Status"))
        channel = Channel(
            code=code,
            name=f.get("Name", "")[:128],
            parent_id=f.get("ParentID", ""),
            status=status,
            parental=f.get("Parental", "0") == "1",
            manufacturer=f.get("Manufacturer", "")[:64],
            model=f.get("Model", "")[:64],
        )
        events.append(CatalogEvent(event, channel))
    return CatalogNotify(head.get("SN", ""), head.get("DeviceID", ""), tuple(events), tuple(odd))
