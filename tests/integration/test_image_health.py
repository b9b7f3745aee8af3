"""Image health on real decoded video: an emulated camera (camsim) sends a normal, frozen,
black and blurred picture (its `picture` fault) and the agent's sampler (edge_agent/image),
reading the camera over RTSP with PyAV as capture does, raises exactly those events."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import av

from edge_agent.image.sampler import ImageSampler

OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32768"}


def _watch(url: str, sampler: ImageSampler, seconds: float) -> None:
    """Read the camera for `seconds`, handing every video packet to the sampler."""
    with av.open(url, "r", options=OPTIONS, timeout=10) as src:
        video = src.streams.video[0]
        sampler.begin(video)
        until = time.monotonic() + seconds
        for packet in src.demux(video):
            if packet.dts is not None:
                sampler.packet(packet, time.monotonic())
            if time.monotonic() > until:
                break


def test_frozen_black_and_blurred_pictures_raise_their_events(camsim: Callable[..., Any]) -> None:
    cams = camsim(cameras=1)
    url = cams.url("1")
    reports: list[tuple[str, str]] = []
    sampler = ImageSampler("1", lambda kind, detail: reports.append((kind, detail)), 0.3)
    _watch(url, sampler, 5)
    assert reports == [], reports  # a moving picture: nothing to say
    assert sampler.samples >= 4 and sampler.cpu_s > 0
    # No decoder kept between samples: each held ~6 MB per camera (edge_agent/image/sampler.py).
    assert not any(isinstance(v, av.CodecContext) for v in vars(sampler).values())
    for fault in ("frozen", "black", "blurred"):
        cams.client.set_picture("1", fault)
        _watch(url, sampler, 5)
        assert reports[-1][0] == "image_fault" and reports[-1][1].startswith(f"{fault}:"), reports
        cams.client.set_picture("1", "none")
        _watch(url, sampler, 5)
        assert reports[-1][0] == "image_ok", reports
    faults = [d.split(":")[0] for k, d in reports if k == "image_fault"]
    assert faults == ["frozen", "black", "blurred"]
