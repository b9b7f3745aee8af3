"""`vigil-provision discover`: cameras on the NVR's LAN, by ONVIF.

WS-Discovery (the `wsdiscovery` library: a multicast Probe for NetworkVideoTransmitter) finds
each camera's device-service URL; then three ONVIF calls per camera (GetCapabilities for the
media service, GetProfiles for codec, resolution and frame rate, GetStreamUri for the RTSP
URL), with a WS-Security UsernameToken digest when the installer gives the cameras' account.
The SOAP is small and built here (stdlib HTTP and XML) rather than through a WSDL toolkit, and
the replies are parsed by pure functions (`parse_*`), tested on their own. A camera that does
not answer is reported with why, never dropped silently.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

NVT = ("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter", "dn")
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "tt": "http://www.onvif.org/ver10/schema",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
}
CODECS = {"H264": "h264", "H265": "h265", "JPEG": "mjpeg"}


class DiscoverError(Exception):
    """One camera could not be read; the message says which call failed and why."""


@dataclass(frozen=True)
class Found:
    xaddr: str
    name: str  # from the onvif://www.onvif.org/name/... scope ("" when none)
    rtsp_url: str = ""
    codec: str = ""
    width: int = 0
    height: int = 0
    problem: str = ""
    fps: float = 0.0  # the encoder's FrameRateLimit (0: not given): what verify expects

    @property
    def camera_id(self) -> str:
        """A camera id for the catalog: the ONVIF name if usable, else from the address."""
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", self.name):
            return self.name
        host = urlsplit(self.xaddr).hostname or "camera"
        return "cam-" + re.sub(r"[^A-Za-z0-9]", "-", host)[:56]


def name_from_scopes(scopes: list[str]) -> str:
    for scope in scopes:
        if scope.startswith("onvif://www.onvif.org/name/"):
            return scope.rsplit("/", 1)[1]
    return ""


def probe(timeout_s: float = 3.0) -> list[tuple[str, str]]:
    """(device-service URL, name) of every ONVIF camera answering a multicast probe."""
    from wsdiscovery import QName  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from wsdiscovery.discovery import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        ThreadedWSDiscovery,
    )
    from wsdiscovery.threaded import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        AddressMonitorThread,
        NetworkingThreadIPv4,
    )

    class Discovery(ThreadedWSDiscovery):  # type: ignore[misc]
        """IPv4 only: the library's IPv6 thread queues messages its IPv4 socket cannot send,
        and the exception ends the networking thread (cameras on NVR LANs speak IPv4)."""

        def _startThreads(self) -> None:
            if getattr(self, "_networkingThread_v4", None) is None:
                net = NetworkingThreadIPv4(self)
                net.start()
                setattr(self, "_networkingThread_v4", net)  # noqa: B010 - the library's field
                monitor = AddressMonitorThread(self, socket.AF_INET)
                setattr(self, "_addrsMonitorThread_v4", monitor)  # noqa: B010
                monitor.start()

    wsd = Discovery()
    wsd.start()
    try:
        services = wsd.searchServices(types=[QName(*NVT)], timeout=timeout_s)
        out = []
        for service in services:
            name = name_from_scopes([str(s.getValue()) for s in service.getScopes()])
            out += [(x, name) for x in service.getXAddrs() if x.startswith("http")]
        return sorted(set(out))
    finally:
        wsd.stop()


def security_header(username: str, password: str, now: datetime, nonce: bytes) -> str:
    """WS-Security UsernameToken with PasswordDigest = B64(SHA1(nonce + created + password))."""
    if not username:
        return ""
    created = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest())  # noqa: S324 - ONVIF's
    wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    wsu = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
    kind = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    return (
        f'<s:Header><wsse:Security xmlns:wsse="{wsse}" xmlns:wsu="{wsu}"><wsse:UsernameToken>'
        f"<wsse:Username>{username}</wsse:Username>"
        f'<wsse:Password Type="{kind}#PasswordDigest">{digest.decode()}</wsse:Password>'
        f'<wsse:Nonce EncodingType="{kind}#Base64Binary">{base64.b64encode(nonce).decode()}'
        f"</wsse:Nonce><wsu:Created>{created}</wsu:Created></wsse:UsernameToken>"
        "</wsse:Security></s:Header>"
    )


def request_body(call: str, header: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{NS["s"]}" '
        f'xmlns:tds="{NS["tds"]}" xmlns:trt="{NS["trt"]}" xmlns:tt="{NS["tt"]}">'
        f"{header}<s:Body>{call}</s:Body></s:Envelope>"
    ).encode()


def _xml(reply: bytes) -> ET.Element:
    try:
        return ET.fromstring(reply)  # noqa: S314 - small replies from the installer's LAN
    except ET.ParseError as exc:
        raise DiscoverError(f"not XML: {exc}") from None


def parse_media_xaddr(reply: bytes, fallback: str) -> str:
    node = _xml(reply).find(".//tt:Media/tt:XAddr", NS)
    return node.text.strip() if node is not None and node.text else fallback


def parse_profile(reply: bytes) -> tuple[str, str, int, int]:
    """(token, codec, width, height) of the first profile with a video encoder."""
    for profile in _xml(reply).iterfind(".//trt:Profiles", NS):
        enc = profile.find("tt:VideoEncoderConfiguration", NS)
        if enc is None:
            continue
        encoding = (enc.findtext("tt:Encoding", "", NS) or "").strip()
        width = int(enc.findtext("tt:Resolution/tt:Width", "0", NS) or 0)
        height = int(enc.findtext("tt:Resolution/tt:Height", "0", NS) or 0)
        return profile.get("token", ""), CODECS.get(encoding, encoding.lower()), width, height
    raise DiscoverError("GetProfiles returned no video profile")


def parse_frame_rate(reply: bytes) -> float:
    """The first video encoder's FrameRateLimit (0 when absent or not a sane number)."""
    for enc in _xml(reply).iterfind(".//trt:Profiles/tt:VideoEncoderConfiguration", NS):
        text = (enc.findtext("tt:RateControl/tt:FrameRateLimit", "", NS) or "").strip()
        try:
            fps = float(text)
        except ValueError:
            return 0.0
        return fps if 0 < fps <= 240 else 0.0
    return 0.0


def parse_stream_uri(reply: bytes) -> str:
    uri = _xml(reply).findtext(".//trt:MediaUri/tt:Uri", "", NS).strip()
    if not uri.startswith(("rtsp://", "rtsps://")):
        raise DiscoverError(f"GetStreamUri returned no RTSP URI ({uri[:60]!r})")
    return uri


def _call(url: str, call: str, username: str, password: str, timeout_s: float) -> bytes:
    header = security_header(username, password, datetime.now(UTC), os.urandom(16))
    request = urllib.request.Request(  # noqa: S310 - an http(s) XAddr (checked by the caller)
        url, data=request_body(call, header), method="POST"
    )
    request.add_header("Content-Type", "application/soap+xml; charset=utf-8")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:  # noqa: S310
            data: bytes = reply.read(256 * 1024)
            return data
    except urllib.error.HTTPError as exc:
        raise DiscoverError(f"{call.split()[0][1:]}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DiscoverError(f"{url}: {getattr(exc, 'reason', exc)}") from None


def describe(
    xaddr: str, name: str, username: str = "", password: str = "", timeout_s: float = 5.0
) -> Found:
    """One camera's RTSP URI, codec and resolution (`problem` says why not)."""
    if not xaddr.startswith(("http://", "https://")):
        return Found(xaddr, name, problem="device service is not an http(s) URL")
    try:
        caps = _call(xaddr, "<tds:GetCapabilities><tds:Category>Media</tds:Category>"
                     "</tds:GetCapabilities>", username, password, timeout_s)  # fmt: skip
        media = parse_media_xaddr(caps, xaddr)
        profiles = _call(media, "<trt:GetProfiles/>", username, password, timeout_s)
        token, codec, width, height = parse_profile(profiles)
        stream = (
            "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
            "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>"
            f"<trt:ProfileToken>{token}</trt:ProfileToken></trt:GetStreamUri>"
        )
        uri = parse_stream_uri(_call(media, stream, username, password, timeout_s))
    except DiscoverError as exc:
        return Found(xaddr, name, problem=str(exc))
    return Found(xaddr, name, uri, codec, width, height, fps=parse_frame_rate(profiles))


def discover(
    timeout_s: float, username: str, password: str, xaddrs: list[str] | None = None
) -> list[Found]:
    """Probe (or take `xaddrs`, for a LAN where multicast is filtered) and describe each."""
    found = [(x, "") for x in xaddrs] if xaddrs else probe(timeout_s)
    return [describe(x, n, username, password) for x, n in found]


def as_dict(found: Found) -> dict[str, Any]:
    return {
        "camera_id": found.camera_id,
        "xaddr": found.xaddr,
        "rtsp_url": found.rtsp_url,
        "codec": found.codec,
        "resolution": f"{found.width}x{found.height}" if found.width else "",
        "fps": found.fps,
        "problem": found.problem,
    }
