"""The audio rules of capture (pure): keep, convert or drop; what a change is; the A/V clock."""

from __future__ import annotations

from edge_agent.capture.audio import (
    ALIGN_US,
    AudioFormat,
    aligned_offset,
    change_of,
    plan_for,
)

PCMA = AudioFormat("pcm_alaw", 8000, 1)
PCMU = AudioFormat("pcm_mulaw", 8000, 1)
AAC = AudioFormat("aac", 16000, 1)


def test_aac_passes_g711_is_converted_the_unknown_is_dropped() -> None:
    assert plan_for(AAC) == "copy"
    assert plan_for(PCMA) == plan_for(PCMU) == "aac"
    assert plan_for(AudioFormat("pcm_alaw", 0, 1)) == "drop"  # no rate: cannot convert
    assert plan_for(AudioFormat("adpcm_g726", 8000, 1)) == "drop"
    assert plan_for(AudioFormat("opus", 48000, 2)) == "drop"


def test_changes_between_connections_or_files() -> None:
    assert change_of(PCMA, PCMA) is None
    assert change_of(None, None) is None
    assert change_of(PCMA, None) == (
        "audio_lost",
        "the camera no longer sends audio (it sent pcm_alaw 8000 Hz 1 ch)",
    )
    assert change_of(None, AAC) == (
        "audio_changed",
        "the camera now sends audio: aac 16000 Hz 1 ch",
    )
    kind, detail = change_of(PCMA, AudioFormat("pcm_alaw", 16000, 1)) or ("", "")
    assert kind == "audio_changed" and "8000 Hz" in detail and "16000 Hz" in detail


def test_audio_follows_the_video_clock() -> None:
    assert aligned_offset(5_000_000, None, 0) == 0  # no video yet: nothing to follow
    assert aligned_offset(5_000_000, 5_200_000, 0) == 0  # close enough: left alone
    # The audio clock re-based (RTCP) far from the video's: re-aligned to it, then kept.
    assert aligned_offset(90_000_000_000, 5_000_000, 0) == 5_000_000 - 90_000_000_000
    offset = 5_000_000 - 90_000_000_000
    assert aligned_offset(90_000_040_000, 5_040_000, offset) == offset
    assert aligned_offset(0, ALIGN_US, 0) == 0
    assert aligned_offset(0, ALIGN_US + 1, 0) == ALIGN_US + 1


def test_adts_aac_into_mp4_segments_is_converted_not_copied() -> None:
    assert plan_for(AAC, "mp4", has_config=False) == "aac"  # from an MPEG-TS recording
    assert plan_for(AAC, "mp4", has_config=True) == "copy"  # RTSP: config in the SDP
    assert plan_for(AAC, "ts", has_config=False) == "copy"
