"""The sources' exception tree, in one place.

    SourceError                 a camera or a recording file could not be read
    ├── ConnectError            the camera could not be reached or dropped the session
    ├── StallError              the camera stayed connected but sent nothing within the timeout
    ├── UnsupportedStreamError  no H.264/H.265 video (another codec, audio only, not RTSP)
    └── RecordingFileError      a file in a recording folder is corrupt, truncated or unreadable

Every message names the camera or the file, and has any URL credentials scrubbed: these
messages go straight into logs, status and MQTT events. FFmpeg errors are translated once, at
the boundary (`raise ... from None`, so the original, which may hold the URL, is not chained).
"""

from __future__ import annotations


class SourceError(Exception):
    """A source failed; the message names the camera or file and holds no credentials."""


class ConnectError(SourceError):
    """Could not connect, or the session broke."""


class StallError(SourceError):
    """Connected, but no data arrived within the read timeout."""


class UnsupportedStreamError(SourceError):
    """The stream or file holds no H.264/H.265 video: the agent never transcodes video."""


class RecordingFileError(SourceError):
    """A recording file cannot be used (corrupt, truncated before any video, unreadable)."""
