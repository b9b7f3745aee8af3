"""Image health's picture checks and confirmation rule on synthetic frames (pure)."""

from __future__ import annotations

import random

from edge_agent.image import checks as ck

W, H = ck.WIDTH, ck.HEIGHT


def scene(seed: int) -> ck.Frame:
    """A textured picture with noise: stripes, a gradient, random speckle."""
    rng = random.Random(seed)
    luma = bytes(
        min(255, max(0, 40 + (x * 3) % 120 + (60 if (y // 6) % 2 else 0) + rng.randint(-6, 6)))
        for y in range(H)
        for x in range(W)
    )
    return ck.Frame(W, H, luma)


def flat(value: int) -> ck.Frame:
    return ck.Frame(W, H, bytes([value]) * (W * H))


def blurred(frame: ck.Frame) -> ck.Frame:
    """A 9x9 box blur of `frame` (what a defocused lens does to edges)."""
    y, out = frame.luma, bytearray(W * H)
    for r in range(H):
        for c in range(W):
            rows = range(max(0, r - 4), min(H, r + 5))
            cols = range(max(0, c - 4), min(W, c + 5))
            total = sum(y[i * W + j] for i in rows for j in cols)
            out[r * W + c] = total // (len(rows) * len(cols))
    return ck.Frame(W, H, bytes(out))


def test_each_fault_is_told_apart() -> None:
    assert ck.fault_of(ck.measure(scene(2), scene(1))) == ""
    assert ck.fault_of(ck.measure(flat(5), None)) == "black"
    assert ck.fault_of(ck.measure(scene(1), scene(1))) == "frozen"
    assert ck.fault_of(ck.measure(flat(128), scene(1))) == "occluded"
    assert ck.fault_of(ck.measure(blurred(scene(3)), scene(1))) == "blurred"


def test_a_fault_is_reported_when_seen_twice_and_cleared_at_once() -> None:
    state = ck.Judge()
    state, said = ck.judge(state, "black")
    assert said is None
    state, said = ck.judge(state, "black")
    assert said == "black"
    state, said = ck.judge(state, "black")
    assert said is None
    state, said = ck.judge(state, "")
    assert said == "ok"
    state, said = ck.judge(state, "blurred")
    state, said = ck.judge(state, "")  # one odd sample: nothing
    assert said is None and state == ck.Judge()
