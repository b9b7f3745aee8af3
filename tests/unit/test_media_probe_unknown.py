"""The media probe never raises: a stream FFmpeg has no decoder for (random bytes can look like
one) is named "unknown" and the segment is still stored (a raising probe failed its upload on
every retry: the link rig's random segments never drained)."""

from __future__ import annotations

import struct
from pathlib import Path

from controller.media.probe import UNKNOWN_CODEC, probe_bytes, probe_file


def _wav(format_tag: int) -> bytes:
    """A RIFF/WAVE file whose audio format tag no decoder knows."""
    data = bytes(8000)
    fmt = struct.pack("<HHIIHH", format_tag, 1, 8000, 8000, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_a_stream_without_a_decoder_is_named_unknown(tmp_path: Path) -> None:
    path = tmp_path / "seg.part"
    path.write_bytes(_wav(0x1234))
    for info in (probe_file(path), probe_bytes(path.read_bytes())):
        assert info.ok, info.error
        assert (info.audio_codec, info.audio_sample_rate) == (UNKNOWN_CODEC, 0)
        assert info.video_codec == ""


def test_a_known_codec_is_still_named(tmp_path: Path) -> None:
    info = probe_bytes(_wav(0x0002))
    assert (info.audio_codec, info.audio_sample_rate, info.audio_channels) == ("adpcm_ms", 8000, 1)
