"""SIP messages (RFC 3261) as plain data: parse, serialize, build responses. Pure, no I/O.

Why our own and not a library: the only Python SIP stack in the package indexes (aiosip 0.2,
2017) is unmaintained, and GB/T 28181 needs a small, strict subset (REGISTER, MESSAGE,
INVITE/ACK/BYE, INFO) plus tolerance for the quirks real platforms send: header names in any
case and compact forms, a Contact without host or port, LF-only line ends, a body whose
Content-Length is missing over UDP. Anything else is refused with a `SipError` naming the
status to answer (400, 413, 505), never an exception that could end the endpoint.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

MAX_MESSAGE_BYTES = 64 * 1024  # a SIP message over UDP is far smaller; anything bigger is junk
MAX_HEADERS = 100
SIP_VERSION = "SIP/2.0"

_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
}
_CANON = {
    name.lower(): name
    for name in (
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Content-Type",
        "Content-Length", "Expires", "User-Agent", "WWW-Authenticate", "Authorization",
        "Subject", "Date", "Allow", "Supported", "Content-Encoding", "Route", "Record-Route",
    )
}  # fmt: skip
_METHOD = re.compile(r"[A-Z]{2,16}")
_STATUS = re.compile(r"SIP/2\.0 (\d{3}) ?(.*)")

REASONS = {
    100: "Trying",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    453: "Not Enough Bandwidth",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
    505: "Version Not Supported",
}


class SipError(Exception):
    """The message cannot be used; `status` is the response to give (when it was a request)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def canonical(name: str) -> str:
    low = name.strip().lower()
    low = _COMPACT[low].lower() if low in _COMPACT else low
    return _CANON.get(low, "-".join(p.capitalize() for p in low.split("-")))


@dataclass(slots=True)
class SipMessage:
    """A request (`method`, `uri`) or a response (`status`, `reason`), headers in order."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def get(self, name: str, default: str = "") -> str:
        want = canonical(name)
        for key, value in self.headers:
            if key == want:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        want = canonical(name)
        return [v for k, v in self.headers if k == want]

    def set(self, name: str, value: str) -> None:
        want = canonical(name)
        self.headers = [(k, v) for k, v in self.headers if k != want]
        self.headers.append((want, value))

    def add(self, name: str, value: str) -> None:
        self.headers.append((canonical(name), value))

    @property
    def call_id(self) -> str:
        return self.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self.get("CSeq").strip().partition(" ")
        return (int(number) if number.isdigit() else 0), method.strip().upper()

    def to_bytes(self) -> bytes:
        start = (
            f"{self.method} {self.uri} {SIP_VERSION}"
            if self.method
            else f"{SIP_VERSION} {self.status} {self.reason}"
        )
        lines = [start]
        lines += [f"{k}: {v}" for k, v in self.headers if k != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def parse(data: bytes, *, datagram: bool = True) -> SipMessage:
    """One SIP message. Over UDP (`datagram`) a missing Content-Length means "the rest"."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipError(413, f"message of {len(data)} bytes is over {MAX_MESSAGE_BYTES}")
    head, body = _split_head(data)
    if head is None:
        raise SipError(400, "no blank line after the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("gb18030", errors="replace")  # some peers put GBK in display names
    lines = _unfold(text.split("\n"))
    if not lines or not lines[0].strip():
        raise SipError(400, "empty start line")
    msg = _start_line(lines[0].strip())
    if len(lines) - 1 > MAX_HEADERS:
        raise SipError(400, f"more than {MAX_HEADERS} header lines")
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise SipError(400, f"malformed header line {line[:60]!r}")
        msg.headers.append((canonical(name), value.strip()))
    length_text = msg.get("Content-Length")
    if length_text:
        if not length_text.isdigit():
            raise SipError(400, f"Content-Length {length_text[:20]!r} is not a number")
        length = int(length_text)
        if length > len(body):
            raise SipError(400, f"Content-Length {length} but {len(body)} bytes of body")
        body = body[:length]
    elif not datagram:
        body = b""
    msg.body = body
    for required in ("Call-ID", "CSeq", "From", "To"):
        if not msg.get(required):
            raise SipError(400, f"missing {required} header")
    if msg.is_request and not msg.get("Via"):
        raise SipError(400, "missing Via header")
    number, method = msg.cseq
    if not number or not method:
        raise SipError(400, f"malformed CSeq {msg.get('CSeq')[:40]!r}")
    return msg


def split_stream(buffer: bytes) -> tuple[list[bytes], bytes, str]:
    """Frames complete messages off a TCP byte stream: (messages, the rest, error or "").
    Leading CRLF keepalives (RFC 5626) are skipped. An error means the stream is unusable."""
    out: list[bytes] = []
    while True:
        buffer = buffer.lstrip(b"\r\n")
        head, _ = _split_head(buffer)
        if head is None:
            if len(buffer) > MAX_MESSAGE_BYTES:
                return out, b"", "headers over the size limit"
            return out, buffer, ""
        match = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*\r?$", head)
        length = int(match.group(1)) if match else 0
        end = _head_end(buffer) + length
        if end > MAX_MESSAGE_BYTES:
            return out, b"", f"message of {end} bytes is over {MAX_MESSAGE_BYTES}"
        if len(buffer) < end:
            return out, buffer, ""
        out.append(buffer[:end])
        buffer = buffer[end:]


def _head_end(data: bytes) -> int:
    crlf, lf = data.find(b"\r\n\r\n"), data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return crlf + 4
    return lf + 2 if lf >= 0 else -1


def _split_head(data: bytes) -> tuple[bytes | None, bytes]:
    end = _head_end(data)
    if end < 0:
        return None, b""
    return data[:end].rstrip(b"\r\n"), data[end:]


def _unfold(lines: list[str]) -> list[str]:
    out: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if line[:1] in (" ", "\t") and out:
            out[-1] += " " + line.strip()
        elif line.strip():
            out.append(line)
    return out


def _start_line(line: str) -> SipMessage:
    if line.startswith("SIP/"):
        m = _STATUS.fullmatch(line)
        if m is None:
            raise SipError(400, f"malformed status line {line[:60]!r}")
        return SipMessage(status=int(m.group(1)), reason=m.group(2))
    parts = line.split(" ")
    if len(parts) != 3 or not _METHOD.fullmatch(parts[0]):
        raise SipError(400, f"malformed request line {line[:60]!r}")
    if parts[2] != SIP_VERSION:
        raise SipError(505, f"version {parts[2][:20]!r} is not SIP/2.0")
    if not parts[1].lower().startswith("sip:"):
        raise SipError(400, f"request URI {parts[1][:60]!r} is not a sip: URI")
    return SipMessage(method=parts[0], uri=parts[1])


# -- header values ------------------------------------------------------------------------------


def param(value: str, name: str) -> str:
    """A `;name=value` parameter of a header value ("" when absent)."""
    m = re.search(rf";\s*{re.escape(name)}\s*=\s*\"?([^;\">,\s]*)", value, re.IGNORECASE)
    return m.group(1) if m else ""


def uri_user(value: str) -> str:
    """The user part of the first sip: URI in a header value or URI ("" when none)."""
    m = re.search(r"sips?:([^@;>\s]+)@", value, re.IGNORECASE)
    return m.group(1) if m else ""


def uri_hostport(value: str) -> tuple[str, int]:
    """Host and port of the first sip: URI; ("", 0) for what is missing (real peers omit both:
    then the caller falls back to the packet's source address)."""
    m = re.search(r"sips?:(?:[^@;>\s]*@)?(\[[^\]]*\]|[^:;>\s]*)(?::(\d+))?", value, re.IGNORECASE)
    if m is None:
        return "", 0
    if "@" not in value and m.group(1).isdigit() and len(m.group(1)) == 20:
        return "", 0  # <sip:34020000002000000001>: a device code, not a host
    port = int(m.group(2)) if m.group(2) and int(m.group(2)) <= 65535 else 0
    return m.group(1).strip("[]"), port


def new_tag() -> str:
    return secrets.token_hex(5)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def response(
    request: SipMessage, status: int, *, to_tag: str = "", body: bytes = b"", reason: str = ""
) -> SipMessage:
    """A response echoing the request's Via, From, To (+ tag), Call-ID and CSeq."""
    out = SipMessage(status=status, reason=reason or REASONS.get(status, "Unknown"))
    for via in request.get_all("Via"):
        out.add("Via", via)
    out.add("From", request.get("From"))
    to = request.get("To")
    if to_tag and not param(to, "tag"):
        to = f"{to};tag={to_tag}"
    out.add("To", to)
    out.add("Call-ID", request.call_id)
    out.add("CSeq", request.get("CSeq"))
    out.add("User-Agent", "Vigil")
    out.body = body
    return out
