"""The PKI on disk: idempotent init, refusing to replace a CA, device files."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.pki import PkiError, common_name, init_pki, load_ca, pki_paths, write_device_files
from controller.pki.certs import issue_device_cert

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_init_creates_ca_and_server_cert_with_private_keys(tmp_path: Path) -> None:
    result = init_pki(tmp_path, [], NOW)
    assert result.ca_created and result.server_cert_issued
    paths = pki_paths(tmp_path)
    for key in (paths.ca_key, paths.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert common_name(paths.server_cert.read_bytes()) == "vigil-controller"


def test_init_is_idempotent_and_keeps_the_ca(tmp_path: Path) -> None:
    init_pki(tmp_path, [], NOW)
    ca_before = pki_paths(tmp_path).ca_cert.read_bytes()
    server_before = pki_paths(tmp_path).server_cert.read_bytes()
    again = init_pki(tmp_path, [], NOW)
    assert not again.ca_created and not again.server_cert_issued
    assert pki_paths(tmp_path).ca_cert.read_bytes() == ca_before
    assert pki_paths(tmp_path).server_cert.read_bytes() == server_before


def test_new_hostname_reissues_only_the_server_cert(tmp_path: Path) -> None:
    init_pki(tmp_path, [], NOW)
    ca_before = pki_paths(tmp_path).ca_cert.read_bytes()
    result = init_pki(tmp_path, ["ctl.example"], NOW)
    assert result.server_cert_issued and not result.ca_created
    assert pki_paths(tmp_path).ca_cert.read_bytes() == ca_before


def test_force_replaces_the_ca(tmp_path: Path) -> None:
    init_pki(tmp_path, [], NOW)
    before = pki_paths(tmp_path).ca_cert.read_bytes()
    assert init_pki(tmp_path, [], NOW, force=True).ca_created
    assert pki_paths(tmp_path).ca_cert.read_bytes() != before


def test_half_a_ca_is_not_silently_replaced(tmp_path: Path) -> None:
    init_pki(tmp_path, [], NOW)
    pki_paths(tmp_path).ca_key.unlink()
    cert_before = pki_paths(tmp_path).ca_cert.read_bytes()
    with pytest.raises(PkiError, match="half a CA"):
        init_pki(tmp_path, [], NOW)
    assert pki_paths(tmp_path).ca_cert.read_bytes() == cert_before


def test_load_ca_without_init_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="vigil-controller init"):
        load_ca(tmp_path)


def test_device_files(tmp_path: Path) -> None:
    init_pki(tmp_path / "d", [], NOW)
    ca = load_ca(tmp_path / "d")
    pair = issue_device_cert(ca, "dev1", NOW)
    files = write_device_files(tmp_path / "out", "dev1", pair, ca.cert_pem)
    assert files.cert.name == "dev1.crt" and files.ca_cert.read_bytes() == ca.cert_pem
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
