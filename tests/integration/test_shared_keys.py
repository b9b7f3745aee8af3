"""Sharing keys shared through the database: two controllers (two data dirs) on one
PostgreSQL accept each other's sessions and signed URLs; keys of the release before (files,
no database rows) are migrated into the database, never replaced; a key in use that differs
from the database's stops start-up; the key-encryption file wraps what is stored."""

from __future__ import annotations

import base64
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from controller.api.component import HttpComponent
from controller.assembly import Controller, Parts, build_controller
from controller.catalog import make_engine
from controller.catalog.secret_store import SecretStore
from controller.clock import SystemClock
from controller.config import ControllerConfig
from controller.grants.keys import UNPUBLISHED, ensure_keys, keys_dir, load_keys
from controller.grants.shared_keys import RAW, SHARED, WRAPPED, load_kek, unseal
from controller.playback.urlsign import UrlSigner
from controller.runtime import StartupError
from controller.users.store import UserStore
from tests.integration.controller_proc import prepare_data_dir

PASSWORD = "correct horse battery staple 7"
GRANT = "0123456789abcdef0123456789abcdef"


def config(data: Path, url: str, kek: Path | None = None) -> ControllerConfig:
    return ControllerConfig.model_validate(
        {
            "data_dir": str(data),
            "database_url": url,
            "key_encryption_file": str(kek or ""),
            "grpc": {"listen": "127.0.0.1:0"},
            "http": {"listen": "127.0.0.1:0"},
            "mqtt": {"mode": "off"},
        }
    )


def replica(data: Path, url: str, kek: Path | None = None) -> Controller:
    controller = build_controller(config(data, url, kek), SystemClock(), Parts(http=True))
    controller.start()
    return controller


def base_url(controller: Controller) -> str:
    http = next(c for c in controller.components if isinstance(c, HttpComponent))
    return http.base_url


def file_keys(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(keys_dir(data).glob("*.*"))}


def stored(url: str) -> dict[str, tuple[str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT name, scheme, value FROM controller_secret"))
            return {r.name: (r.scheme, r.value) for r in rows}
    finally:
        engine.dispose()


@pytest.fixture
def pg(pg_server: object) -> Iterator[str]:
    url = pg_server.create_database()  # type: ignore[attr-defined]
    try:
        yield url
    finally:
        pg_server.drop_database(url)  # type: ignore[attr-defined]


def test_two_replicas_on_one_database_accept_each_others_sessions_and_urls(
    tmp_path: Path, pg: str
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for data in (a, b):  # `vigil-controller init` on each replica: each makes its own keys
        prepare_data_dir(data)
        ensure_keys(data)
    first_b = file_keys(b)
    ra = replica(a, pg)
    rb = replica(b, pg)
    try:
        # B's own, never-published keys were replaced by the city's (A's, published first).
        assert file_keys(b) == file_keys(a) != first_b
        assert not (keys_dir(a) / UNPUBLISHED).exists()
        assert not (keys_dir(b) / UNPUBLISHED).exists()
        UserStore(ra.core.engine, SystemClock()).create("admin-1", "city", "admin", PASSWORD)
        for issuer, checker in ((ra, rb), (rb, ra)):
            login = httpx.post(
                f"{base_url(issuer)}/api/v1/login",
                json={"user_id": "admin-1", "password": PASSWORD},
            )
            assert login.status_code == 200, login.text
            token = login.json()["token"]
            seen = httpx.get(
                f"{base_url(checker)}/api/v1/devices", headers={"Authorization": f"Bearer {token}"}
            )
            assert seen.status_code == 200, seen.text
        forged = httpx.get(
            f"{base_url(rb)}/api/v1/devices", headers={"Authorization": f"Bearer {token}x"}
        )
        assert forged.status_code == 401
        # A segment URL signed with A's key verifies with B's (what B's playback loads).
        now_us = time.time_ns() // 1000
        expires = UrlSigner.expiry_s(now_us, now_us + 3_600_000_000)
        query = UrlSigner.single(load_keys(a).url_hmac).query(GRANT, "seg-1", expires)
        sig = dict(p.split("=", 1) for p in query.split("&"))
        UrlSigner.single(load_keys(b).url_hmac).check(
            "seg-1", GRANT, sig["e"], sig["k"], sig["s"], now_us
        )
        assert load_keys(a).root_public == load_keys(b).root_public
        assert load_keys(a).evidence_public == load_keys(b).evidence_public
    finally:
        rb.stop(grace_s=0.5)
        ra.stop(grace_s=0.5)
    assert set(stored(pg)) == set(SHARED)


def test_a_replica_with_an_empty_data_dir_takes_the_citys_keys(tmp_path: Path, pg: str) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    prepare_data_dir(a)
    prepare_data_dir(b)
    ensure_keys(a)
    replica(a, pg).stop(grace_s=0.5)
    replica(b, pg).stop(grace_s=0.5)
    assert file_keys(b) == file_keys(a)
    for name in ("grant_root.key", "evidence.key", "url_hmac.key"):
        assert stat.S_IMODE((keys_dir(b) / name).stat().st_mode) == 0o600


def previous_release_keys(data: Path) -> dict[str, bytes]:
    """A data dir as the release before shared keys left it: key files, no marker."""
    prepare_data_dir(data)
    ensure_keys(data)
    (keys_dir(data) / UNPUBLISHED).unlink()
    return file_keys(data)


def test_keys_of_the_previous_release_are_migrated_not_replaced(
    tmp_path: Path, catalog_url: str
) -> None:
    data = tmp_path / "data"
    before = previous_release_keys(data)
    replica(data, catalog_url).stop(grace_s=0.5)
    assert file_keys(data) == before
    rows = stored(catalog_url)
    keys = load_keys(data)
    assert base64.b64decode(rows["url_hmac"][1]) == keys.url_hmac
    assert base64.b64decode(rows["grant_root"][1]) == keys.root.private_bytes_raw()
    assert {scheme for scheme, _ in rows.values()} == {RAW}
    replica(data, catalog_url).stop(grace_s=0.5)  # and again: nothing changes
    assert file_keys(data) == before and stored(catalog_url) == rows


def test_a_key_in_use_that_differs_from_the_databases_stops_start_up(
    tmp_path: Path, pg: str
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    prepare_data_dir(a)
    ensure_keys(a)
    replica(a, pg).stop(grace_s=0.5)
    theirs = previous_release_keys(b)  # a second install with its own keys in use
    with pytest.raises(StartupError, match="differs from the shared grant_root key"):
        build_controller(config(b, pg), SystemClock(), Parts(http=True))
    assert file_keys(b) == theirs  # untouched


def kek_file(path: Path, mode: int = 0o600) -> Path:
    path.write_bytes(base64.b64encode(os.urandom(48)))
    path.chmod(mode)
    return path


def test_the_key_encryption_file_wraps_stored_keys(tmp_path: Path, pg: str) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for data in (a, b, c):
        prepare_data_dir(data)
    ensure_keys(a)
    replica(a, pg).stop(grace_s=0.5)  # no key-encryption file yet: stored raw
    assert {scheme for scheme, _ in stored(pg).values()} == {RAW}
    kek = kek_file(tmp_path / "kek")
    replica(a, pg, kek).stop(grace_s=0.5)  # configured later: wrapped in place, same keys
    rows = stored(pg)
    assert {scheme for scheme, _ in rows.values()} == {WRAPPED}
    url_key = load_keys(a).url_hmac
    assert base64.b64decode(rows["url_hmac"][1]) != url_key
    replica(b, pg, kek).stop(grace_s=0.5)
    assert file_keys(b) == file_keys(a)
    with pytest.raises(StartupError, match="wrapped: set key_encryption_file"):
        build_controller(config(c, pg), SystemClock(), Parts(http=True))
    with pytest.raises(StartupError, match="does not open"):
        build_controller(config(c, pg, kek_file(tmp_path / "other")), SystemClock(), Parts())
    with pytest.raises(StartupError, match="chmod 600"):
        build_controller(config(c, pg, kek_file(tmp_path / "loose", 0o644)), SystemClock())
    assert not keys_dir(c).exists() or not any(keys_dir(c).glob("*.key"))


def test_stored_rows_are_written_once(tmp_path: Path, catalog_url: str) -> None:
    """Insert-if-absent: a second offer returns the first row (two replicas starting
    together); the KEK loader refuses a short file."""
    engine: Engine = make_engine(catalog_url)
    try:
        store = SecretStore(engine)
        first = store.offer("url_hmac", RAW, base64.b64encode(b"1" * 32).decode(), 1)
        second = store.offer("url_hmac", RAW, base64.b64encode(b"2" * 32).decode(), 2)
        assert first == second and unseal("url_hmac", second, None) == b"1" * 32
    finally:
        engine.dispose()
    short = tmp_path / "short"
    short.write_bytes(b"too short")
    short.chmod(0o600)
    with pytest.raises(Exception, match="at least 32"):
        load_kek(short)


def test_replicas_starting_together_agree_on_one_set_of_keys(tmp_path: Path, pg: str) -> None:
    """Each with keys of its own from `init`, several replicas start at once on a new
    database: every key has exactly one winner and every replica ends up with it."""
    import threading

    datas = [tmp_path / f"r{i}" for i in range(3)]
    for data in datas:
        prepare_data_dir(data)
        ensure_keys(data)
    make_engine(pg).dispose()  # the schema first: this test is about the keys
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(datas))

    def start(data: Path) -> None:
        try:
            barrier.wait()
            build_controller(config(data, pg), SystemClock(), Parts()).core.dispose()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(d,)) for d in datas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    first = file_keys(datas[0])
    assert all(file_keys(d) == first for d in datas[1:])
    rows = stored(pg)
    assert base64.b64decode(rows["url_hmac"][1]) == first["url_hmac.key"]


def test_the_key_commands_use_the_citys_keys_from_the_database(tmp_path: Path, pg: str) -> None:
    """`keys --config` and `grant mint` on a data dir that never served take the city's keys
    (a grant minted there verifies on the city); a differing key in use is refused."""
    from controller.__main__ import main

    a, b = tmp_path / "a", tmp_path / "b"
    prepare_data_dir(a)
    ensure_keys(a)
    replica(a, pg).stop(grace_s=0.5)  # publishes a's keys: the city's
    toml = tmp_path / "b.toml"
    toml.write_text(f'data_dir = "{b}"\ndatabase_url = "{pg}"\n', encoding="utf-8")
    prepare_data_dir(b)
    ensure_keys(b)  # b's own keys, made before it ever met the database
    assert file_keys(b) != file_keys(a)
    assert main(["keys", "--config", str(toml)]) == 0
    assert file_keys(b) == file_keys(a)
    # A data dir whose keys were never published, used by `grant mint` first.
    c = tmp_path / "c"
    prepare_data_dir(c)
    ensure_keys(c)
    toml_c = tmp_path / "c.toml"
    toml_c.write_text(f'data_dir = "{c}"\ndatabase_url = "{pg}"\n', encoding="utf-8")
    mint = ["grant", "mint", "--config", str(toml_c), "--as-user", "admin-1", "--holder-org",
            "county", "--camera", "cam-x", "--from", "2026-12-01T00:00:00+08:00",
            "--to", "2026-12-01T01:00:00+08:00",
            "--ops", "playback", "--purpose", "test", "--out", str(tmp_path / "token")]  # fmt: skip
    main(mint)  # refused or not (cam-x is unknown), it must not sign with c's own keys
    assert file_keys(c) == file_keys(a)
    # A key in use that differs is never replaced by a command either.
    (keys_dir(b) / "grant_root.key").unlink()
    ensure_keys(b)  # a new root key, now "in use" (not marked unpublished)
    (keys_dir(b) / UNPUBLISHED).unlink()
    before = file_keys(b)
    assert main(["keys", "--config", str(toml)]) == 1
    assert file_keys(b) == before
