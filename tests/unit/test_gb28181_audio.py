"""Audio in a device's PS kept in the recorded segments (controller/gb28181/tsmux.py):
G.711 A-law or μ-law (FFmpeg-encoded here) interleaved with H.264 in PS, demuxed, cut and
muxed; ffprobe must read an AAC track of the segment's length (G.711 has no MPEG-TS stream
type), and the μ-law tone must come out as the tone (decoded as μ-law, not as A-law)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import av
import numpy as np

from controller.gb28181.livets import LiveTs
from controller.gb28181.ps import G711A, H264, AccessUnit, PsPacker
from controller.gb28181.psdemux import PsDemuxer
from controller.gb28181.recorder import SegmentCutter
from controller.gb28181.tsmux import G711U, mux_ts
from tests.unit.test_gb28181_livets import encoded

SAMPLES = 320  # 40 ms at 8 kHz, one G.711 packet


def alaw_packets(seconds: float, codec: str = "pcm_alaw") -> list[bytes]:
    """A 440 Hz tone, G.711 encoded by FFmpeg (A-law, or `codec`), 40 ms per packet."""
    enc = av.CodecContext.create(codec, "w")
    enc.sample_rate, enc.layout, enc.format = 8000, "mono", "s16"
    t = np.arange(int(seconds * 8000)) / 8000
    pcm = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    out = []
    for n in range(0, len(pcm) - SAMPLES + 1, SAMPLES):
        frame = av.AudioFrame.from_ndarray(pcm[n : n + SAMPLES].reshape(1, -1), "s16", "mono")
        frame.sample_rate = 8000
        out += [bytes(p) for p in enc.encode(frame)]
    return out


def interleaved(seconds: float, codec: str = "pcm_alaw") -> list[AccessUnit]:
    """25 fps video and 40 ms audio packets, each audio packet after the frame of its time."""
    video = encoded(int(seconds * 25), gop=25)
    audio = alaw_packets(seconds, codec)
    units = []
    for n, v in enumerate(video):
        units.append(v)
        if n < len(audio):
            units.append(AccessUnit(G711A, v.pts, None, False, audio[n]))
    return units


def probe(path: Path) -> dict[str, str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a", "-count_frames", "-show_entries",
         "stream=codec_name,sample_rate,channels,duration", "-of", "default=nw=1", str(path)],
        capture_output=True, check=True, timeout=30, text=True,
    ).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_g711_in_ps_is_kept_as_aac_in_the_recorded_segment(tmp_path: Path) -> None:
    packer, demux = PsPacker(), PsDemuxer()
    ps = b"".join(p for u in interleaved(2.0) if (p := packer.pack(u, G711A)))
    units = demux.feed(ps) + demux.flush()
    assert {u.stream_type for u in units} == {H264, G711A}
    cutter = SegmentCutter(segment_s=1.0)
    cuts = [c for u in units if (c := cutter.add(u)) is not None]
    last = cutter.flush()
    assert last is not None and len(cuts) == 1
    for n, cut in enumerate([*cuts, last]):
        assert sum(u.stream_type == G711A for u in cut.units) == 25  # 1 s of 40 ms packets
        seg = tmp_path / f"seg{n}.ts"
        seg.write_bytes(mux_ts(cut.units))
        facts = probe(seg)
        assert facts["codec_name"] == "aac" and facts["sample_rate"] == "8000"
        assert facts["channels"] == "1"
        with av.open(io.BytesIO(seg.read_bytes())) as c:
            samples = sum(f.samples for f in c.decode(audio=0))
        assert 8000 <= samples <= 8000 + 2048  # 1 s, plus the encoder's priming


def test_video_only_segments_stay_video_only_and_audio_before_the_first_key_is_left_out(
    tmp_path: Path,
) -> None:
    units = interleaved(1.0)
    cutter = SegmentCutter(segment_s=5.0)
    early = AccessUnit(G711A, 0, None, False, b"\xd5" * SAMPLES)
    assert cutter.add(early) is None and cutter.units == []  # no segment yet: not kept
    video = [u for u in units if u.stream_type == H264]
    seg = tmp_path / "video.ts"
    seg.write_bytes(mux_ts(video))
    assert probe(seg) == {}


def as_mulaw(ps: bytes) -> bytes:
    """The PS with its PSMs declaring the audio μ-law (0x91), as such an NVR's do (Vigil's
    packer, which the cascade uses, never sends μ-law)."""
    out, k = bytearray(ps), 0
    while (k := ps.find(b"\x00\x00\x01\xbc", k)) >= 0:
        end = k + 6 + int.from_bytes(ps[k + 4 : k + 6], "big")
        at = ps.find(bytes([G711A, 0xC0]), k, end)
        assert at > 0
        out[at] = G711U
        k = end
    return bytes(out)


def test_g711_mulaw_in_ps_is_decoded_as_mulaw_into_aac(tmp_path: Path) -> None:
    packer, demux = PsPacker(), PsDemuxer()
    ps = b"".join(p for u in interleaved(1.2, "pcm_mulaw") if (p := packer.pack(u, G711A)))
    units = demux.feed(as_mulaw(ps)) + demux.flush()
    assert {u.stream_type for u in units} == {H264, G711U}
    cutter = SegmentCutter(segment_s=1.0)
    cut = next(c for u in units if (c := cutter.add(u)) is not None)
    seg = tmp_path / "mulaw.ts"
    seg.write_bytes(mux_ts(cut.units))
    facts = probe(seg)
    assert facts["codec_name"] == "aac" and facts["sample_rate"] == "8000"
    with av.open(io.BytesIO(seg.read_bytes())) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    # the 440 Hz tone at ~0.37 of full scale: μ-law bytes read as A-law would not be it
    body = pcm[2048:8000]
    spectrum = np.abs(np.fft.rfft(body))
    peak_hz = np.argmax(spectrum) * 8000 / len(body)
    assert abs(peak_hz - 440) < 5, peak_hz
    rms = float(np.sqrt(np.mean(body.astype(np.float64) ** 2)))
    assert 0.2 < rms < 0.32, rms  # 12000/32768/sqrt(2) = 0.26


def tone_of(data: bytes) -> tuple[float, int]:
    """The main frequency (Hz) of a TS's AAC track and its decoded video frames."""
    with av.open(io.BytesIO(data), format="mpegts") as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    with av.open(io.BytesIO(data), format="mpegts") as c:
        frames = sum(1 for _ in c.decode(video=0))
    body = pcm[2048:]
    return float(np.argmax(np.abs(np.fft.rfft(body))) * 8000 / len(body)), frames


def test_live_view_of_a_channel_with_g711_carries_it_as_aac() -> None:
    """The live feed (livets) of a device whose PSM lists G.711: an AAC track beside the video,
    the tone intact, no frame held back; the first chunk is a start, audio chunks are not, and
    a viewer joining at a later keyframe chunk decodes from there."""
    chunks: list[tuple[bytes, bool]] = []
    live = LiveTs(lambda data, key, _codec: chunks.append((data, key)), lambda: G711A)
    for u in interleaved(2.0):
        live.unit(u)
    data = b"".join(c for c, _ in chunks)
    hz, frames = tone_of(data)
    assert abs(hz - 440) < 5, hz
    assert frames >= 49  # the last waits for a next frame, as without audio
    assert chunks[0][1] and any(not key for _c, key in chunks)
    second_key = next(n for n, (_c, key) in enumerate(chunks) if key and n > 0)
    _hz, from_second = tone_of(b"".join(c for c, _ in chunks[second_key:]))  # a late viewer
    assert from_second >= 24


def test_live_view_without_an_audio_hint_stays_video_only() -> None:
    chunks: list[bytes] = []
    live = LiveTs(lambda data, _key, _codec: chunks.append(data))
    for u in interleaved(1.0):
        live.unit(u)
    with av.open(io.BytesIO(b"".join(chunks)), format="mpegts") as c:
        assert len(c.streams.audio) == 0 and len(c.streams.video) == 1
