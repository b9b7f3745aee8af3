"""One finished recording file (an NVR's or a handheld terminal's) as a source of H.264/H.265
video and audio packets.

A file has no arrival times, so its wall-clock start comes from what the file itself says:
a timestamp in its name (NVRs name files by start time), else the container's creation_time,
else its modification time minus its duration (it was finished when last written).

Names are read in the source's time zone (`timezone` in the camera's config; Chinese NVRs name
files in Beijing time, so the default is Asia/Shanghai), unless the name says UTC itself
(`...T000000Z`) or is a Unix epoch; inside Vigil every time is UTC. An NVR names every file by
its start time, so an NVR file whose name carries no time is refused rather than placed by
guesswork (an mtime can be hours off after a copy). `recording_start_us` is pure and unit tested.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import av
import av.error
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.stream import VideoStream

from edge_agent.sources.errors import RecordingFileError, SourceError
from edge_agent.sources.rtsp import check_video, describe_error, first_audio

TS_PACKET = 188
VIDEO_SUFFIXES = frozenset({".ts", ".mts", ".m2ts", ".mp4", ".m4v", ".mov", ".mkv"})

_NAME_TIME = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d\d)-?(?P<mo>\d\d)-?(?P<d>\d\d)[T_ -]?"
    r"(?P<h>\d\d)[:.-]?(?P<mi>\d\d)[:.-]?(?P<s>\d\d)(?!\d)(?P<z>Z)?"
)
_EPOCH = re.compile(r"^(?P<n>\d{10}|\d{13})$")


def name_time_us(name: str, zone: tzinfo = UTC) -> int | None:
    """UTC microseconds from a timestamp in a file name read in `zone` (a trailing "Z" means
    UTC), or None if it has none."""
    stem = Path(name).stem
    epoch = _EPOCH.match(stem)
    if epoch:
        n = int(epoch["n"])
        return n * 1_000_000 if len(epoch["n"]) == 10 else n * 1_000
    for match in _NAME_TIME.finditer(stem):
        try:
            moment = datetime(
                int(match["y"]),
                int(match["mo"]),
                int(match["d"]),
                int(match["h"]),
                int(match["mi"]),
                int(match["s"]),
                tzinfo=UTC if match["z"] else zone,
            )
        except ValueError:
            continue  # digits that only look like a date
        return int(moment.timestamp()) * 1_000_000
    return None


def metadata_time_us(creation_time: str | None) -> int | None:
    """UTC microseconds from an ISO 8601 `creation_time` tag, or None."""
    if not creation_time:
        return None
    try:
        moment = datetime.fromisoformat(creation_time.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.year < 2000:  # "1970-01-01" and "1904-01-01" mean "not set"
        return None
    return int(moment.timestamp() * 1_000_000)


def recording_start_us(
    name: str,
    creation_time: str | None,
    mtime_us: int,
    duration_us: int | None,
    zone: tzinfo = UTC,
) -> int:
    """Where a recording begins in wall-clock time (see the module docstring for the order)."""
    for guess in (name_time_us(name, zone), metadata_time_us(creation_time)):
        if guess is not None:
            return guess
    return mtime_us - max(0, duration_us or 0)


def looks_truncated(path_suffix: str, size: int) -> bool:
    """An MPEG-TS file is a whole number of 188-byte packets unless it was cut off."""
    return path_suffix.lower() in {".ts", ".mts"} and size % TS_PACKET != 0


@dataclass(frozen=True, slots=True)
class FileFacts:
    size: int
    mtime_ns: int


class RecordingFile:
    """An opened recording file: its video (and audio) stream, its start time, its packets."""

    def __init__(
        self,
        camera_id: str,
        path: Path,
        container: InputContainer,
        stream: VideoStream,
        facts: FileFacts,
        zone: tzinfo = UTC,
    ) -> None:
        self.camera_id = camera_id
        self.path = path
        self.container = container
        self.stream = stream
        self.audio: AudioStream | None = first_audio(container)
        self.facts = facts
        self.corrupt_packets = 0
        self.truncated = looks_truncated(path.suffix, facts.size)
        duration = container.duration  # microseconds (AV_TIME_BASE) or None
        self.duration_us: int | None = int(duration) if duration and duration > 0 else None
        self.start_us = recording_start_us(
            path.name,
            container.metadata.get("creation_time"),
            facts.mtime_ns // 1000,
            self.duration_us,
            zone,
        )

    @classmethod
    def open(
        cls, camera_id: str, path: Path, zone: tzinfo = UTC, *, named: bool = False
    ) -> RecordingFile:
        """Open and check a file; raises RecordingFileError/UnsupportedStreamError naming it.

        `named`: the file's name must carry its start time (an NVR's recordings)."""
        if named and name_time_us(path.name, zone) is None:
            raise RecordingFileError(
                f"camera {camera_id}: {path} has no start time in its name (NVR files are named "
                f"like ch01_20260101T080000.mp4, read in {zone}); skipped"
            )
        try:
            st = os.stat(path)
        except OSError as exc:
            raise RecordingFileError(f"camera {camera_id}: cannot read {path}: {exc}") from None
        if st.st_size == 0:
            raise RecordingFileError(f"camera {camera_id}: {path} is empty")
        try:
            # An absolute path: FFmpeg reads "2026-01-01T12:00:00.ts" as a URL scheme otherwise.
            container = av.open(str(path.absolute()), timeout=10.0)
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise RecordingFileError(
                f"camera {camera_id}: {path} is corrupt or truncated ({describe_error(exc)})"
            ) from None
        try:
            stream = check_video(camera_id, str(path), container)
        except SourceError:
            container.close()
            raise
        facts = FileFacts(st.st_size, st.st_mtime_ns)
        return cls(camera_id, path, container, stream, facts, zone)

    def packets(self) -> Iterator[Packet[Stream]]:
        """Video and audio packets in file order. A read error part-way raises
        RecordingFileError; the packets before it were good and stay captured."""
        streams = [self.stream] if self.audio is None else [self.stream, self.audio]
        demux = self.container.demux(streams)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except (av.error.FFmpegError, OSError) as exc:
                raise RecordingFileError(
                    f"camera {self.camera_id}: {self.path} is damaged part-way "
                    f"({describe_error(exc)})"
                ) from None
            if packet.size == 0 or (packet.pts is None and packet.dts is None):
                continue
            if packet.is_corrupt:
                self.corrupt_packets += 1
            yield packet

    def close(self) -> None:
        try:
            self.container.close()
        except (av.error.FFmpegError, OSError):
            pass
