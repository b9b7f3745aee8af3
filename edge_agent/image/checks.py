"""Picture checks on one small grayscale frame (pure; bytes in, verdicts out).

The sampler hands a frame scaled to `WIDTH`x`HEIGHT` luma (160x90: enough for the four
faults, and ~14,000 pixels keep a check in pure Python at a few milliseconds once a minute).

- black: mean luma below 20 and little contrast (lens cap, dead sensor, no video signal).
- frozen: the sampled frame differs from the previous sample (a minute earlier) by less than
  0.5 luma levels on average: a real scene, even a still one, has sensor noise and lighting
  drift; an encoder repeating one picture has none.
- blurred: variance of the 4-neighbour Laplacian below 60 (defocus, fogged or dirty lens);
  a flat but bright picture is "occluded", not blurred.
- occluded: three quarters or more of the 16 tiles nearly uniform (stddev < 4) while the
  picture is not black: something in front of the lens.

A fault must be seen on two samples in a row before it is reported, and clears on the first
good sample (`Judge`): one odd frame (a scene change, a flash) raises nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 160, 90
BLACK_MEAN = 20.0
BLACK_STD = 8.0
FROZEN_DIFF = 0.5
BLUR_LAPLACIAN = 60.0
TILE_STD = 4.0
OCCLUDED_TILES = 12  # of 16


@dataclass(frozen=True, slots=True)
class Frame:
    width: int
    height: int
    luma: bytes  # width * height bytes, row by row


@dataclass(frozen=True, slots=True)
class Measures:
    mean: float
    std: float
    laplacian_var: float
    flat_tiles: int
    diff: float | None  # mean absolute difference to the previous sample


def _mean_std(values: bytes | list[int]) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    s = sum(values)
    sq = sum(v * v for v in values)
    mean = s / n
    return mean, max(0.0, sq / n - mean * mean) ** 0.5


def measure(frame: Frame, previous: Frame | None) -> Measures:
    w, h, y = frame.width, frame.height, frame.luma
    if len(y) != w * h or w < 4 or h < 4:
        raise ValueError(f"frame of {len(y)} bytes is not {w}x{h}")
    mean, std = _mean_std(y)
    # Laplacian on every second pixel of every second row: a quarter of the work, same answer.
    lap: list[int] = []
    for row in range(1, h - 1, 2):
        base = row * w
        for col in range(1, w - 1, 2):
            i = base + col
            lap.append(4 * y[i] - y[i - 1] - y[i + 1] - y[i - w] - y[i + w])
    _, lap_std = _mean_std(lap)
    flat = 0
    tw, th = w // 4, h // 4
    for ty in range(4):
        for tx in range(4):
            tile = [
                y[r * w + c]
                for r in range(ty * th, (ty + 1) * th, 2)
                for c in range(tx * tw, (tx + 1) * tw, 2)
            ]
            if _mean_std(tile)[1] < TILE_STD:
                flat += 1
    diff = None
    if previous is not None and len(previous.luma) == len(y):
        p = previous.luma
        diff = sum(abs(a - b) for a, b in zip(y, p, strict=True)) / len(y)
    return Measures(mean, std, lap_std * lap_std, flat, diff)


def fault_of(m: Measures) -> str:
    """The picture's worst fault now ("" when fine), in order of severity."""
    if m.mean < BLACK_MEAN and m.std < BLACK_STD:
        return "black"
    if m.diff is not None and m.diff < FROZEN_DIFF:
        return "frozen"
    if m.flat_tiles >= OCCLUDED_TILES:
        return "occluded"
    if m.laplacian_var < BLUR_LAPLACIAN:
        return "blurred"
    return ""


@dataclass(frozen=True, slots=True)
class Judge:
    """Per camera: the fault reported (""), and the one seen last sample (to confirm)."""

    reported: str = ""
    candidate: str = ""


def judge(state: Judge, fault: str) -> tuple[Judge, str | None]:
    """Next state, and what to report: a fault name when one is confirmed (seen twice), "ok"
    when a reported fault cleared, None when nothing changes."""
    if fault == state.reported:
        return Judge(state.reported, fault), None
    if not fault:
        return Judge("", ""), "ok" if state.reported else None
    if fault == state.candidate:
        return Judge(fault, fault), fault
    return Judge(state.reported, fault), None
