"""Credentials in camera URLs never reach logs, errors or MQTT."""

import logging

import pytest

from edge_agent.redact import RedactingFilter, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:secret@10.1.2.3:554/Streaming/1", "rtsp://***@10.1.2.3:554/Streaming/1"),
        ("rtsp://admin@host/x", "rtsp://***@host/x"),
        ("rtsp://host:554/x", "rtsp://host:554/x"),
        ("rtsps://u:p%40ss@h/x?a=1", "rtsps://***@h/x?a=1"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_scrubs_every_url() -> None:
    text = "failed rtsp://a:b@h1/x then rtsp://c:d@h2/y"
    out = redact_text(text)
    assert "a:b" not in out and "c:d" not in out
    assert "rtsp://***@h1/x" in out


def test_filter_scrubs_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("vigil.test.redact")
    log.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="vigil.test.redact"):
        log.info("opening %s", "rtsp://admin:topsecret@h/1")
        try:
            raise ValueError("cannot open rtsp://admin:topsecret@h/1")
        except ValueError:
            log.exception("camera failed")
    assert "topsecret" not in caplog.text
    assert "rtsp://***@h/1" in caplog.text
