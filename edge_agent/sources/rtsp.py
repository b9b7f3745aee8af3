"""An RTSP camera as a source of H.264/H.265 video and audio packets (PyAV demux only).

One `RtspSession` is one connection. Its `packets()` iterator ends when the camera closes the
connection (FFmpeg reports end of stream, no exception) and raises `StallError` when nothing
arrives within the read timeout. Reconnecting is the capture worker's job, not this module's.
Video is demuxed with the camera's first audio stream, if it has one: audio is kept.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import av.error
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.stream import VideoStream

from edge_agent.redact import redact_text, redact_url
from edge_agent.sources.errors import (
    ConnectError,
    SourceError,
    StallError,
    UnsupportedStreamError,
)

SUPPORTED_CODECS = {"h264": "H.264", "hevc": "H.265"}
_MAX_UNTIMED = 8  # untimed packets held at once; more than that is a broken stream
_PROBE_BYTES = (32_768, 8_000_000)  # first probe; the second, for a keyframe up to ~10 s away
_LONG_PROBE_S = 12.0


@dataclass(frozen=True, slots=True)
class RtspOptions:
    transport: str = "tcp"  # "tcp" (default: survives NAT and loss) or "udp"
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0


def check_rtsp_url(camera_id: str, url: str) -> None:
    """Refuse anything but rtsp:// and rtsps:// (FFmpeg would happily open a local file)."""
    if not url.lower().startswith(("rtsp://", "rtsps://")):
        raise UnsupportedStreamError(
            f"camera {camera_id}: URL {redact_url(url)!r} is not rtsp:// or rtsps://"
        )


def describe_error(exc: BaseException) -> str:
    """An FFmpeg error as one line without credentials (its filename is the camera URL)."""
    if isinstance(exc, av.error.FFmpegError):
        text = exc.strerror or type(exc).__name__
    else:
        text = str(exc) or type(exc).__name__
    return redact_text(text)


def check_video(camera_id: str, what: str, container: InputContainer) -> VideoStream:
    """The container's first video stream, which must be H.264 or H.265 (remuxed as it is)."""
    if not container.streams.video:
        audio = [a.codec_context.name or "unknown" for a in container.streams.audio]
        if audio:
            raise UnsupportedStreamError(
                f"camera {camera_id}: {what} sends audio only ({', '.join(audio)}), no video; "
                "a camera must send H.264 or H.265 video"
            )
        raise UnsupportedStreamError(f"camera {camera_id}: {what} has no video stream")
    stream = container.streams.video[0]
    codec = stream.codec_context.name
    if codec not in SUPPORTED_CODECS:
        raise UnsupportedStreamError(
            f"camera {camera_id}: {what} sends {codec or 'unknown'} video; only H.264 and "
            "H.265 are supported (the agent never transcodes video)"
        )
    return stream


def first_audio(container: InputContainer) -> AudioStream | None:
    """The container's first audio stream, if any (what the camera's microphone sends)."""
    audio = container.streams.audio
    return audio[0] if audio else None


def codec_label(stream: VideoStream) -> str:
    """ "H.264"/"H.265", for log lines."""
    name = stream.codec_context.name
    return SUPPORTED_CODECS.get(name, name or "unknown")


class RtspSession:
    """One open RTSP connection to one camera."""

    def __init__(
        self,
        camera_id: str,
        container: InputContainer,
        stream: VideoStream,
        audio: AudioStream | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.container = container
        self.stream = stream
        self.audio = audio
        tb = stream.time_base or Fraction(1, 90_000)
        self.time_base = Fraction(tb)

    @classmethod
    def open(cls, camera_id: str, url: str, options: RtspOptions) -> RtspSession:
        """Connect and read the stream description; raises a SourceError naming the camera.

        A stall is noticed by FFmpeg's own socket timeout (`timeout`, µs: a read that waits
        longer fails with ETIMEDOUT, `StallError` in `packets()`), not by PyAV's read timer:
        that timer installs an interrupt callback which takes the GIL on every I/O check FFmpeg
        makes, several per RTP packet, and with eight capture threads that GIL traffic cost the
        agent a third of its CPU (docs/benchmarks.md, "Agent capture"). PyAV's timer bounds only
        the open, where it costs nothing.

        The socket timeout also applies while opening, so the first attempt uses the read
        timeout and a second attempt, for a camera that was silent that long or sent no
        parameter sets, uses the open timeout or the long probe (whichever is longer): a camera
        slow to answer DESCRIBE, or one that sends nothing until its next keyframe (a long GOP),
        opens on that attempt and keeps that longer stall bound for the session.
        """
        check_rtsp_url(camera_id, url)
        where = redact_url(url)
        ff_options = {
            "rtsp_transport": options.transport,
            "timeout": _micros(options.read_timeout_s),
            # Probe only the first packets: the SDP and the first keyframe say all we need
            # (we never decode), and a long probe delays the start and bursts its packets.
            "analyzeduration": "0",
            "probesize": str(_PROBE_BYTES[0]),
        }
        try:
            try:
                container = av.open(url, options=ff_options, timeout=(options.open_timeout_s, None))
            except av.error.InvalidDataError as first:
                container = cls._open_again(url, ff_options, options, first)
            except (av.error.FFmpegError, OSError) as first:
                if getattr(first, "errno", None) != errno.ETIMEDOUT:
                    raise
                container = cls._open_again(url, ff_options, options, first)
        except (av.error.FFmpegError, OSError) as exc:
            raise ConnectError(
                f"camera {camera_id}: cannot open {where}: {describe_error(exc)}"
            ) from None
        try:
            stream = check_video(camera_id, where, container)
        except SourceError:
            container.close()
            raise
        return cls(camera_id, container, stream, first_audio(container))

    @staticmethod
    def _open_again(
        url: str, ff_options: dict[str, str], options: RtspOptions, first: BaseException
    ) -> InputContainer:
        """The second attempt: a long probe and a socket timeout as long as the open's."""
        if isinstance(first, av.error.InvalidDataError):
            ff_options["probesize"] = str(_PROBE_BYTES[1])
        patient = max(options.open_timeout_s, options.read_timeout_s, _LONG_PROBE_S)
        ff_options["timeout"] = _micros(patient)
        return av.open(url, options=ff_options, timeout=(patient, None))

    def packets(self) -> Iterator[Packet[Stream]]:
        """Video and audio packets as they arrive; ends on disconnect, raises StallError on
        silence.

        FFmpeg's RTP depacketizer hands out a session's first video packet (a keyframe)
        without timestamps. Untimed video packets are held and stamped back from the next timed
        one, one frame apart, when that one shows no frame reordering (pts == dts); with
        B-frames a guessed pts could precede its dts and break the muxer, so they are dropped
        and the segment writer waits for a keyframe with real timestamps.

        One generator straight over PyAV's demuxer (it runs for every packet of every
        camera); once the session's clock runs, a packet takes the first branch only.
        """
        held: list[Packet[Stream]] = []
        video = self.stream.index
        timed = False  # a video packet with both timestamps came: the session's clock runs
        streams = [self.stream] if self.audio is None else [self.stream, self.audio]
        try:
            for packet in self.container.demux(streams):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream flush packet
                if timed:  # the steady state
                    if packet.dts is None and packet.pts is None and packet.stream_index == video:
                        continue  # untimed later on: the segment writer would refuse it anyway
                    yield packet
                    continue
                if packet.stream_index != video:
                    yield packet
                    continue
                if packet.dts is None:
                    if len(held) < _MAX_UNTIMED:
                        held.append(packet)
                    continue
                if packet.pts is not None:
                    if held:
                        yield from _stamp_back(held, packet)
                        held = []
                    timed = True
                yield packet
        except av.error.EOFError:
            return
        except (av.error.FFmpegError, OSError) as exc:
            if _timed_out(exc):
                raise StallError(
                    f"camera {self.camera_id}: no data for the read timeout (stalled)"
                ) from None
            raise ConnectError(
                f"camera {self.camera_id}: stream broke: {describe_error(exc)}"
            ) from None

    def close(self) -> None:
        try:
            self.container.close()
        except (av.error.FFmpegError, OSError):
            pass  # the connection is gone either way


def _micros(seconds: float) -> str:
    return str(int(seconds * 1_000_000))


def _timed_out(exc: BaseException) -> bool:
    """FFmpeg's socket timeout (ETIMEDOUT) or an interrupt by PyAV's open timer."""
    return isinstance(exc, av.error.ExitError) or getattr(exc, "errno", None) == errno.ETIMEDOUT


def _stamp_back(held: list[Packet[Stream]], timed: Packet[Stream]) -> list[Packet[Stream]]:
    """Timestamps for the session's first video packets, from the first one with both.

    In decode order they are the frames just before `timed`, one frame apart: that gives their
    dts. A packet that has its pts keeps it (with B-frames FFmpeg knows the pts before the
    dts); the one without (the first keyframe) is shown just before the earliest frame seen,
    as a keyframe opening a GOP is. Anything inconsistent (two packets without a pts, a pts
    before its dts, two frames shown at once) and nothing safe can be guessed: they are
    dropped, and the segment writer waits for the next keyframe.
    """
    ref, pts = timed.dts, timed.pts
    step = timed.duration or 0
    if ref is None or pts is None or step <= 0:
        return []
    missing = [p for p in held if p.pts is None]
    if pts == ref and len(missing) == len(held):  # no reordering: shown as decoded
        for back, packet in enumerate(reversed(held), start=1):
            packet.pts = packet.dts = ref - back * step
        return held
    if len(missing) > 1:
        return []
    known = [p.pts for p in held if p.pts is not None] + [pts]
    # Every frame still to come is decoded after `timed`, so shown after `ref`: when a frame
    # shown by then is among those seen, the earliest seen is the one after the keyframe.
    if missing and min(known) > ref:
        return []
    first_shown = min(known) - step
    stamps = []
    for back, packet in enumerate(reversed(held), start=1):
        dts = ref - back * step
        shown = packet.pts if packet.pts is not None else first_shown
        if shown < dts:
            return []
        stamps.append((packet, shown, dts))
    if len({shown for _, shown, _ in stamps} | {pts}) != len(stamps) + 1:
        return []
    for packet, shown, dts in stamps:
        packet.pts, packet.dts = shown, dts
    return held
