"""Emulated cameras answer ONVIF: WS-Discovery probes and the few calls discovery needs.

    vigil-camsim onvif --rtsp-base rtsp://127.0.0.1:8554 --cameras 2 --http-port 8080 \
        [--camera-profile 2=h265] [--preset d1]

Each camera is one ONVIF NetworkVideoTransmitter: published over WS-Discovery (the
`wsdiscovery` library, UDP multicast 239.255.255.250:3702) with scope
`onvif://www.onvif.org/name/cam-<id>` and its own device-service URL on one HTTP port,
which answers GetCapabilities (the media service is the same URL), GetProfiles (one profile:
the camera's codec and resolution) and GetStreamUri (`<rtsp-base>/cam/<id>`, what
`vigil-camsim serve` serves). Run beside `serve` so installers' `vigil-provision discover` is
tested against something that speaks the protocol. Anything else is a SOAP fault.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

NVT = ("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter", "dn")
SOAP_NS = "http://www.w3.org/2003/05/soap-envelope"
_ACTION_RE = re.compile(rb"<(?:\w+:)?(GetCapabilities|GetProfiles|GetStreamUri)\b")


@dataclass(frozen=True)
class OnvifCamera:
    camera_id: str
    rtsp_url: str
    encoding: str  # H264 | H265 | JPEG
    width: int
    height: int
    fps: int = 25


def _envelope(body: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP_NS}" '
        'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
        'xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
        'xmlns:tt="http://www.onvif.org/ver10/schema">'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def answer(action: str, camera: OnvifCamera, url: str) -> bytes | None:
    """The SOAP reply to one call (pure); None for a call this emulator does not know."""
    if action == "GetCapabilities":
        return _envelope(
            "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media>"
            f"<tt:XAddr>{escape(url)}</tt:XAddr></tt:Media></tds:Capabilities>"
            "</tds:GetCapabilitiesResponse>"
        )
    if action == "GetProfiles":
        return _envelope(
            '<trt:GetProfilesResponse><trt:Profiles token="main" fixed="true">'
            f"<tt:Name>{escape(camera.camera_id)} main</tt:Name>"
            '<tt:VideoEncoderConfiguration token="venc0">'
            f"<tt:Encoding>{camera.encoding}</tt:Encoding><tt:Resolution>"
            f"<tt:Width>{camera.width}</tt:Width><tt:Height>{camera.height}</tt:Height>"
            "</tt:Resolution><tt:RateControl>"
            f"<tt:FrameRateLimit>{camera.fps}</tt:FrameRateLimit></tt:RateControl>"
            "</tt:VideoEncoderConfiguration></trt:Profiles>"
            "</trt:GetProfilesResponse>"
        )
    if action == "GetStreamUri":
        return _envelope(
            "<trt:GetStreamUriResponse><trt:MediaUri>"
            f"<tt:Uri>{escape(camera.rtsp_url)}</tt:Uri></trt:MediaUri>"
            "</trt:GetStreamUriResponse>"
        )
    return None


FAULT = _envelope(
    "<s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code>"
    "<s:Reason><s:Text>not emulated</s:Text></s:Reason></s:Fault>"
)


class OnvifEmulator:
    """The HTTP device services and the WS-Discovery publisher of a set of cameras."""

    def __init__(self, cameras: list[OnvifCamera], address: str = "127.0.0.1", port: int = 0):
        self.cameras = {c.camera_id: c for c in cameras}
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                emulator._post(self)

            def log_message(self, *args: Any) -> None:
                return None

        self._http = ThreadingHTTPServer((address, port), Handler)
        self.address = address
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._publishers: list[Any] = []

    def url(self, camera_id: str) -> str:
        return f"http://{self.address}:{self.port}/onvif/{camera_id}/device_service"

    def _post(self, request: BaseHTTPRequestHandler) -> None:
        parts = request.path.strip("/").split("/")
        camera = self.cameras.get(parts[1]) if len(parts) == 3 and parts[0] == "onvif" else None
        length = min(int(request.headers.get("Content-Length") or 0), 64 * 1024)
        body = request.rfile.read(length)
        found = _ACTION_RE.search(body)
        reply = None
        if camera is not None and found is not None:
            reply = answer(found.group(1).decode(), camera, self.url(camera.camera_id))
        request.send_response(200 if reply else (404 if camera is None else 400))
        request.send_header("Content-Type", "application/soap+xml; charset=utf-8")
        data = reply or FAULT
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def start(self, discovery: bool = True) -> None:
        self._thread.start()
        if discovery:
            from wsdiscovery import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
                QName,
                Scope,
            )
            from wsdiscovery.publishing import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
                ThreadedWSPublishing,
            )
            from wsdiscovery.threaded import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
                AddressMonitorThread,
                NetworkingThreadIPv4,
            )

            class Publisher(ThreadedWSPublishing):  # type: ignore[misc]
                """IPv4 only: the library's IPv6 thread queues replies its IPv4 socket cannot
                send, and the exception ends the networking thread."""

                def _startThreads(self) -> None:
                    if getattr(self, "_networkingThread_v4", None) is None:
                        net = NetworkingThreadIPv4(self)
                        net.start()
                        setattr(self, "_networkingThread_v4", net)  # noqa: B010 - the library's field
                        monitor = AddressMonitorThread(self, socket.AF_INET)
                        setattr(self, "_addrsMonitorThread_v4", monitor)  # noqa: B010
                        monitor.start()

            # One publisher per camera, as each real camera answers for itself (one
            # publisher's ProbeMatches with several services reaches clients as one).
            for camera in self.cameras.values():
                publisher = Publisher()
                publisher.start()
                self._publishers.append(publisher)
                publisher.publishService(
                    types=[QName(*NVT)],
                    scopes=[
                        Scope(f"onvif://www.onvif.org/name/{camera.camera_id}"),
                        Scope("onvif://www.onvif.org/hardware/vigil-camsim"),
                    ],
                    xAddrs=[self.url(camera.camera_id)],
                )

    def stop(self) -> None:
        for publisher in self._publishers:
            publisher.stop()
        self._http.shutdown()
        self._http.server_close()


ENCODINGS = {"h264": "H264", "h265": "H265", "mjpeg": "JPEG"}


def cameras_from(
    rtsp_base: str,
    count: int,
    profile: str,
    assignments: list[str],
    size: tuple[int, int],
    fps: int = 25,
) -> list[OnvifCamera]:
    """The cameras `vigil-camsim serve` with the same options serves (ids 1..count)."""
    from vigil_camsim import profiles

    default = profiles.parse_profile(profile)
    per = profiles.parse_assignments(assignments)
    out = []
    for i in range(1, count + 1):
        codec = per.get(str(i), default).codec
        out.append(
            OnvifCamera(
                f"cam-{i}",
                f"{rtsp_base.rstrip('/')}/cam/{i}",
                ENCODINGS.get(codec, "H264"),
                *size,
                fps=fps,
            )
        )
    return out


def add_parser(sub: Any) -> None:
    p = sub.add_parser("onvif", help="answer WS-Discovery and ONVIF for `serve`'s cameras")
    p.add_argument("--rtsp-base", default="rtsp://127.0.0.1:8554")
    p.add_argument("--cameras", type=int, default=1)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--profile", default="h264")
    p.add_argument("--camera-profile", action="append", default=[], metavar="ID=PROFILE")
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--fps", type=int, default=25, help="the FrameRateLimit answered (as serve)")


def run(args: Any) -> int:
    import sys
    import time

    try:
        cams = cameras_from(
            args.rtsp_base, args.cameras, args.profile, args.camera_profile,
            (args.width, args.height), args.fps,
        )  # fmt: skip
    except ValueError as exc:
        sys.stderr.write(f"vigil-camsim onvif: {exc}\n")
        return 2
    emulator = OnvifEmulator(cams, args.address, args.http_port)
    emulator.start()
    sys.stdout.write(f"ONVIF for {len(cams)} camera(s) on http://{args.address}:{emulator.port}\n")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 130
    finally:
        emulator.stop()
