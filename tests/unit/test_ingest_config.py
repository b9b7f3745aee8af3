"""controller.toml: strict validation, embedded defaults, VIGIL_* overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import ConfigError, load_config, parse_config


def test_embedded_defaults_live_in_the_data_dir() -> None:
    config = parse_config('data_dir = "/srv/vigil"', "t.toml")
    assert config.resolved_database_url() == "sqlite:////srv/vigil/catalog.db"
    assert config.resolved_storage_url() == "file:///srv/vigil/objects"
    assert config.tls_paths() == (
        Path("/srv/vigil/pki/server.crt"),
        Path("/srv/vigil/pki/server.key"),
        Path("/srv/vigil/pki/ca.crt"),
    )
    assert config.grpc.listen == "127.0.0.1:7443"
    assert config.ingest.max_chunk_bytes == 4 * 1024 * 1024


def test_unknown_keys_are_errors_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"t.toml: .*ingest.max_chunk"):
        parse_config("[ingest]\nmax_chunk = 5", "t.toml")


def test_bad_values_are_errors() -> None:
    with pytest.raises(ConfigError, match="grpc.listen"):
        parse_config('[grpc]\nlisten = "7443"', "t.toml")
    with pytest.raises(ConfigError, match="max_concurrent_uploads"):
        parse_config("[ingest]\nmax_concurrent_uploads = 0", "t.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[ingest", "t.toml")


def test_workers_must_exceed_the_upload_limit() -> None:
    with pytest.raises(ConfigError, match="max_workers"):
        parse_config("[grpc]\nmax_workers = 8\n[ingest]\nmax_concurrent_uploads = 8", "t.toml")


def test_message_limit_must_fit_a_chunk() -> None:
    text = "[grpc]\nmax_message_bytes = 1048576\n[ingest]\nmax_chunk_bytes = 2097152"
    with pytest.raises(ConfigError, match="max_message_bytes"):
        parse_config(text, "t.toml")


def test_environment_overrides_the_file() -> None:
    env = {
        "VIGIL_INGEST__MAX_CONCURRENT_UPLOADS": "3",
        "VIGIL_GRPC__LISTEN": "0.0.0.0:9443",
        "VIGIL_DATABASE_URL": "postgresql://u:secret@db/vigil",
        "OTHER": "x",
    }
    config = parse_config("[ingest]\nmax_concurrent_uploads = 9", "t.toml", env)
    assert config.ingest.max_concurrent_uploads == 3
    assert config.grpc.listen == "0.0.0.0:9443"
    assert "secret" not in config.describe()


def test_describe_never_shows_storage_keys() -> None:
    text = 'storage_url = "s3://b?endpoint=http://h:1&access_key=AK1&secret_key=SK1"'
    line = parse_config(text, "t.toml").describe()
    assert "SK1" not in line and "AK1" not in line and "s3://b" in line


def test_command_line_overrides_win(tmp_path: Path) -> None:
    path = tmp_path / "controller.toml"
    path.write_text('data_dir = "/a"\n')
    assert load_config(path, {}, data_dir=str(tmp_path)).data_dir == str(tmp_path)
    assert load_config(None, {}, data_dir="/b").data_dir == "/b"


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", {})


def test_fair_share_limits_default_and_validate() -> None:
    config = parse_config('data_dir = "/srv/vigil"', "t.toml")
    ing = config.ingest
    assert (ing.max_uploads_per_device, ing.reserved_upload_slots) == (4, 2)
    assert ing.stall_timeout_s < ing.idle_timeout_s
    assert ing.staging_budget() == 4 * ing.max_segment_bytes  # 0: derived
    custom = parse_config(
        "[ingest]\nmax_segment_bytes = 2048\nmax_staging_bytes_per_device = 8192", "t.toml"
    )
    assert custom.ingest.staging_budget() == 8192
    with pytest.raises(ConfigError, match="max_staging_bytes_per_device"):
        parse_config(
            "[ingest]\nmax_segment_bytes = 4096\nmax_staging_bytes_per_device = 2048", "t.toml"
        )
    with pytest.raises(ConfigError, match="max_uploads_per_device"):
        parse_config("[ingest]\nmax_uploads_per_device = 0", "t.toml")
