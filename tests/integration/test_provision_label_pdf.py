"""The PDF label's font errors (the label itself is drawn and checked by the bundle in
tests/integration/test_provision.py: one font load is seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioning.label import Label, LabelError, write_labels

LABEL = Label("nvr-sm-1", "62120200001180000007", "wudu", "sm01", "石门村", "nvr",
              "enroll.city:7444", "abcdef123456", 1_796_000_000_000_000)  # fmt: skip


def test_a_missing_or_unusable_font_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_LABEL_FONT", str(tmp_path / "none.ttc"))
    with pytest.raises(LabelError, match="no such file"):
        write_labels(tmp_path / "a.pdf", [LABEL])
    junk = tmp_path / "junk.ttf"
    junk.write_bytes(b"not a font at all")
    monkeypatch.setenv("VIGIL_LABEL_FONT", str(junk))
    with pytest.raises(LabelError, match="not a usable font"):
        write_labels(tmp_path / "b.pdf", [LABEL])
    assert not (tmp_path / "a.pdf").exists() and not (tmp_path / "b.pdf").exists()
