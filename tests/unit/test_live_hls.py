"""Short-segment HLS of a live feed (controller/live/hls.py): segments cut at keyframe chunks
of the agent's muxer, each starting with PAT/PMT and a keyframe, durations from PTS, a rolling
window and its playlist."""

from __future__ import annotations

from controller.live.hls import HlsWindow, video_start
from edge_agent.live.mux import TsMuxer
from tests.unit.test_live_mux import encoded, frames_of


def chunks(frames: int = 100, gop: int = 10) -> list[tuple[bytes, bool]]:
    stream, packets = encoded(frames, gop)
    out: list[tuple[bytes, bool]] = []
    muxer = TsMuxer(stream, lambda data, key: out.append((data, key)) or True)
    for packet in packets:
        muxer.feed(packet)
    return out


def test_keyframe_chunks_are_told_apart_from_periodic_pat() -> None:
    found = [video_start(data) for data, _ in chunks()]
    assert all(f is not None for f in found)
    assert [f[1] for f in found if f] == [key for _, key in chunks()]


def test_segments_start_at_keyframes_and_last_at_least_the_target() -> None:
    window = HlsWindow(target_s=0.5, keep=4)  # 25 fps, GOP 10 = 0.4 s: two GOPs a segment
    for data, _ in chunks(100, 10):
        window.add(data)
    assert window.ready()
    playlist = window.playlist(lambda seq: f"{seq}.ts")
    lines = playlist.splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1"]
    assert "#EXT-X-ENDLIST" not in playlist
    extinf = [float(ln.split(":")[1].rstrip(",")) for ln in lines if ln.startswith("#EXTINF")]
    assert len(extinf) == 4 and all(0.5 <= d < 1.0 for d in extinf), extinf
    first_seq = int(lines[3].split(":")[1])
    assert first_seq > 0  # older segments left the window
    for seq, duration in zip(range(first_seq, first_seq + 4), extinf, strict=True):
        data = window.segment(seq)
        assert data is not None
        frames = frames_of(data)
        assert frames[0].key_frame and len(frames) == round(duration * 25)
    assert window.segment(0) is None


def test_a_window_joined_mid_gop_starts_at_the_next_keyframe() -> None:
    window = HlsWindow(target_s=0.1, keep=100)
    for data, _ in chunks(60, 10)[3:]:
        window.add(data)
    first = window.segment(0)
    assert first is not None and frames_of(first)[0].key_frame
    window.restart()  # a new stream: nothing is cut across it
    assert window.segment(0) is not None  # what was cut stays until it leaves the window
