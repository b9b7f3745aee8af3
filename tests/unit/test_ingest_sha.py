"""The resumable SHA-256 of streamed multipart ingest (controller/ingest/sha.py): a state
saved at a part boundary and continued elsewhere gives hashlib's digest, and anything that
is not such a state is refused."""

from __future__ import annotations

import hashlib
import random

import pytest

from controller.ingest.sha import ResumableSha256


@pytest.mark.parametrize("cut", [0, 64, 1024 * 1024, 5 * 1024 * 1024])
def test_a_hash_resumed_from_a_saved_state_equals_hashlib(cut: int) -> None:
    data = random.Random(cut).randbytes(5 * 1024 * 1024 + 12_345)
    first = ResumableSha256()
    first.update(data, 0, cut)
    saved = first.state()
    resumed = ResumableSha256.from_state(saved)
    resumed.update(data, cut)
    first.update(data, cut)
    assert resumed.length == first.length == len(data)
    assert resumed.hexdigest() == first.hexdigest() == hashlib.sha256(data).hexdigest()


def test_hexdigest_does_not_end_the_hash() -> None:
    sha = ResumableSha256()
    sha.update(b"abc")
    assert sha.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    sha.update(b"def")
    assert sha.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


def test_a_state_is_only_saved_on_a_block_boundary() -> None:
    sha = ResumableSha256()
    sha.update(b"x" * 65)
    with pytest.raises(ValueError, match="64-byte"):
        sha.state()


@pytest.mark.parametrize(
    "state", ["", "zz", "00" * 32, "00" * 32 + ":63", "00" * 31 + ":64", "00" * 32 + ":-64"]
)
def test_malformed_states_are_refused(state: str) -> None:
    with pytest.raises(ValueError):
        ResumableSha256.from_state(state)


def test_update_checks_its_range() -> None:
    with pytest.raises(ValueError):
        ResumableSha256().update(b"abc", 2, 9)


def test_views_of_a_received_message_hash_like_bytes() -> None:
    """Chunks arrive as memoryviews of the gRPC message (wire.py): hashed in place."""
    raw = random.Random(7).randbytes(300_000)
    view = memoryview(raw)[1000:]
    sha = ResumableSha256()
    sha.update(view, 0, 4096)
    sha.update(view[4096:], 10)  # a view of a view, from an offset
    sha.update(bytearray(b"tail"))
    expected = hashlib.sha256(raw[1000 : 1000 + 4096] + raw[1000 + 4096 + 10 :] + b"tail")
    assert sha.hexdigest() == expected.hexdigest()
    with pytest.raises(ValueError, match="outside"):
        sha.update(view, 0, len(view) + 1)
