"""The MPEG-TS write-through file: counters continued and SHA-256 taken as the muxer writes."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import av
import pytest

from edge_agent.capture.tscontinuity import TS_PACKET, continue_counters, counters_continue
from edge_agent.capture.tsfile import TsWriteThrough


def _ts(pid: int, cc: int) -> bytes:
    return bytes([0x47, (pid >> 8) & 0x1F, pid & 0xFF, 0x10 | cc]) + b"\xff" * (TS_PACKET - 4)


def _fresh(n: int) -> bytes:
    return b"".join([_ts(0, 0), _ts(0x1000, 0)] + [_ts(0x100, i % 16) for i in range(n)])


@pytest.mark.parametrize("seed", range(5))
def test_any_write_sizes_give_the_bytes_counters_and_hash_of_one_pass(
    tmp_path: Path, seed: int
) -> None:
    data = _fresh(300)
    prior = {0: 7, 0x1000: 7, 0x100: 11}
    expected, expected_cc = continue_counters(data, prior)
    f = TsWriteThrough(tmp_path / "seg.ts", prior)
    rng, pos = random.Random(seed), 0
    while pos < len(data):  # cut anywhere, as a muxer's buffer would be
        n = rng.randint(1, 3 * TS_PACKET)
        assert f.write(memoryview(data)[pos : pos + n]) == len(data[pos : pos + n])
        pos += n
    f.close()
    on_disk = (tmp_path / "seg.ts").read_bytes()
    assert on_disk == bytes(expected)
    assert f.counters == expected_cc
    assert f.digest == (len(on_disk), hashlib.sha256(on_disk).hexdigest())
    assert counters_continue(continue_counters(data, {})[0] + on_disk, {}) != []  # prior used


def test_a_muxer_writes_through_it_and_two_files_form_one_stream(tmp_path: Path) -> None:
    """A real MPEG-TS muxer (PyAV) writing into two files in turn: the second file's counters
    continue the first's, and each digest is the file's SHA-256."""
    counters: dict[int, int] = {}
    files = []
    for n in range(2):
        path = tmp_path / f"{n}.ts"
        f = TsWriteThrough(path, counters)
        with av.open(f, "w", format="mpegts", options={"flush_packets": "0"}) as out:
            stream = out.add_stream("mpeg1video", rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for i in range(30):
                frame = av.VideoFrame(64, 48, "yuv420p")
                for plane in frame.planes:
                    plane.update(bytes([i * 8 % 256]) * plane.buffer_size)
                frame.pts = i
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        f.close()
        data = path.read_bytes()
        assert f.digest == (len(data), hashlib.sha256(data).hexdigest())
        counters = f.counters
        files.append(data)
    assert len(files[0]) % TS_PACKET == 0
    assert counters_continue(files[0] + files[1], {}) == []
