"""One camera's audio across its connections and segment files: the writer's audio half.

The segment writer owns the video and the files; this lane puts the camera's audio into
whatever file is open (see `edge_agent.capture.audio` for the rules and why), keeps it on the
video's clock, and reports when it stops, comes back or changes. It never fails a segment: an
audio packet a muxer would refuse is dropped on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import av
import av.error
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream

from .audio import SILENT_US, AudioFormat, AudioTrack, aligned_offset, change_of

log = logging.getLogger(__name__)

RECENT_US = 500_000  # audio heard this recently goes into the next segment


class AudioLane:
    def __init__(
        self, camera_id: str, event: Callable[[str, str], None], container: str = "ts"
    ) -> None:
        self.camera_id = camera_id
        self._container = container
        self._event = event
        self.track: AudioTrack | None = None
        self._out: OutputContainer | None = None
        self._stream: Stream | None = None
        self._offset_us = 0  # added to audio timestamps to keep them on the video's clock
        self._last_dts: int | None = None  # the last audio dts muxed into the open file
        self._heard_us: int | None = None  # when audio was last heard (video clock, µs)
        self._silent = False
        self._format: AudioFormat | None = None
        self._known = False  # whether a connection or file has been seen yet
        self.video_us: int | None = None  # the video's clock (µs) as last written
        self.lift_us = 0  # what the writer adds to every timestamp it writes (µs)

    @property
    def stream(self) -> AudioStream | None:
        return self.track.stream if self.track is not None else None

    @property
    def cpu_s(self) -> float:
        """Thread CPU spent converting this connection's audio (0 when it passes through)."""
        return self.track.cpu_s if self.track is not None else 0.0

    def begin(self, audio: AudioStream | None) -> None:
        """A new connection or file, with this audio stream (or none): a change is an event."""
        track = AudioTrack(audio, self._container) if audio is not None else None
        fmt = track.format if track is not None else None
        if self._known:
            change = change_of(self._format, fmt)
            if change is not None:
                log.warning("camera %s: %s; video goes on", self.camera_id, change[1])
                self._event(*change)
        elif track is not None and track.plan == "drop":
            log.warning("camera %s: audio %s cannot be kept; video only", self.camera_id, fmt)
        self._known, self._format = True, fmt
        self.track, self._out, self._stream = track, None, None
        self._offset_us, self._heard_us, self._silent = 0, None, False
        self.video_us, self.lift_us = None, 0

    def open(self, out: OutputContainer) -> None:
        """A new segment file: its audio stream. A camera whose audio stopped (nothing heard
        for `RECENT_US`) gets video-only segments until it is back: an empty audio track
        leaves players waiting for sound that never comes."""
        quiet = (
            self._heard_us is not None
            and self.video_us is not None
            and self.video_us - self._heard_us > RECENT_US
        )
        track = self.track if not (self._silent or quiet) else None
        self._out, self._last_dts = out, None
        self._stream = track.add_to(out) if track is not None else None

    def close(self) -> None:
        self._out = self._stream = None

    def feed(self, packet: Packet[Stream]) -> bool:
        """Put an audio packet into the open segment (none open: dropped)."""
        track, tb = self.track, packet.time_base
        if track is None or packet.pts is None or not tb:
            return False
        audio_us = int(packet.pts * tb * 1_000_000)
        offset = aligned_offset(audio_us, self.video_us, self._offset_us)
        realigned, self._offset_us = offset != self._offset_us, offset
        if self._silent and realigned:
            return False  # a straggler, or sound on a new clock: back once a second one agrees
        self._heard_us = audio_us + offset
        if self._silent:
            self._silent = False
            log.info("camera %s: audio is back (from the next segment)", self.camera_id)
            self._event("audio_changed", f"audio is back: {track.format}")
        if self._stream is None:
            return False
        if offset or self.lift_us:
            shift = round((offset + self.lift_us) / 1_000_000 / tb)
            packet.pts = packet.pts + shift
            packet.dts = None if packet.dts is None else packet.dts + shift
        if packet.dts is None:
            packet.dts = packet.pts
        return self._mux(track.convert(packet))

    def flush(self) -> None:
        """The converter's last sound, into the open file (the end of a connection or file)."""
        if self.track is not None:
            self._mux(self.track.flush())

    def heard_video(self, video_us: int) -> None:
        """Note the video's clock; report once when the audio stopped while video goes on."""
        self.video_us = video_us
        if self.track is None or self._silent:
            return
        if self._heard_us is None:
            self._heard_us = video_us
        if video_us - self._heard_us > SILENT_US:
            self._silent = True
            detail = f"no audio for {SILENT_US // 1_000_000} s ({self.track.format}); video goes on"
            log.warning("camera %s: %s", self.camera_id, detail)
            self._event("audio_lost", detail)

    def _mux(self, packets: list[Packet[Stream]]) -> bool:
        out, stream = self._out, self._stream
        if out is None or stream is None:
            return False
        written = False
        for packet in packets:
            dts = packet.dts if packet.dts is not None else packet.pts
            if dts is None or dts < 0:
                continue  # AAC priming before the video started: it would wrap on disk
            if self._last_dts is not None and dts <= self._last_dts:
                continue  # never hand the muxer a packet it would refuse
            try:
                packet.stream = stream
                out.mux(packet)
            except (av.error.FFmpegError, ValueError) as exc:
                log.debug("camera %s: audio packet dropped: %s", self.camera_id, exc)
                continue
            self._last_dts = dts
            written = True
        return written
