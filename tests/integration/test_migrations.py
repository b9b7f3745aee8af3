"""Schema migrations on real SQLite and PostgreSQL: the migrations make exactly the models'
schema, a database of the release before migrations (with rows in it) is stamped and
upgraded with its rows intact, `serve` refuses an old or newer schema naming the command to
run, `db upgrade` is idempotent, and a malformed URL changes nothing."""

from __future__ import annotations

import importlib
import os
import pkgutil
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

import controller
from controller.__main__ import main
from controller.catalog import make_engine
from controller.catalog.db import schema_state, upgrade_database
from controller.catalog.schema import (
    BEHIND,
    CURRENT,
    EMPTY,
    LEGACY,
    SchemaError,
    baseline_metadata,
    read_state,
    script_directory,
)
from controller.catalog.schema import _run as run_migrations
from controller.clock import ManualClock
from controller.config import ControllerConfig
from controller.runtime import StartupError, open_core

T0 = 1_767_225_600_000_000
HEAD = script_directory().get_current_head()


def all_models() -> sa.MetaData:
    """Every table any controller module defines, each module imported: SQLModel.metadata
    and any module-level MetaData of its own (a store with plain SQLAlchemy tables)."""
    import sys

    skip = ("controller.__main__", "controller.catalog.migrations")
    for info in pkgutil.walk_packages(controller.__path__, "controller."):
        if not info.name.startswith(skip):
            importlib.import_module(info.name)
    sources = [SQLModel.metadata]
    for name, module in list(sys.modules.items()):
        if name.startswith("controller.") and not name.startswith(skip):
            sources += [v for v in vars(module).values() if isinstance(v, sa.MetaData)]
    combined = sa.MetaData()
    for source in dict.fromkeys(sources):
        for table in source.sorted_tables:
            if table.name not in combined.tables:
                table.to_metadata(combined)
    return combined


def diff(engine: Engine, metadata: sa.MetaData) -> list[str]:
    with engine.connect() as conn:
        return [str(d) for d in compare_metadata(MigrationContext.configure(conn), metadata)]


def migrated_schema(like: Engine) -> sa.MetaData:
    """The schema `upgrade head` makes, reflected from a new in-memory database (SQLite) or
    a scratch schema (PostgreSQL) on `like`'s server."""
    if like.dialect.name == "sqlite":
        fresh = make_engine("sqlite://")
        try:
            reflected = sa.MetaData()
            reflected.reflect(fresh)
            reflected.remove(reflected.tables["alembic_version"])
            return reflected
        finally:
            fresh.dispose()
    with like.begin() as conn:
        conn.execute(text("CREATE SCHEMA scratch"))
        conn.execute(text("SET LOCAL search_path TO scratch"))
        run_migrations(conn, script_directory(), "head", stamp=False)
        reflected = sa.MetaData()
        reflected.reflect(conn)
        conn.execute(text("SET LOCAL search_path TO public"))
        conn.execute(text("DROP SCHEMA scratch CASCADE"))
    reflected.remove(reflected.tables["alembic_version"])
    return reflected


def tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_upgrade_head_on_an_empty_database_is_exactly_the_models(catalog_url: str) -> None:
    """A table or column added to a model without a migration fails here, with the diff."""
    metadata = all_models()
    engine = make_engine(catalog_url)
    try:
        assert schema_state(engine).kind == CURRENT
        differences = diff(engine, metadata)
        assert differences == [], (
            "the migrations do not make the models' schema: add a revision under "
            "controller/catalog/migrations/versions (docs/operations.md, 'Adding a "
            "migration'):\n  " + "\n  ".join(differences)
        )
    finally:
        engine.dispose()


def test_the_check_sees_a_model_without_its_migration(catalog_url: str) -> None:
    metadata = sa.MetaData()
    for table in all_models().sorted_tables:
        table.to_metadata(metadata)
    sa.Table("not_migrated", metadata, sa.Column("id", sa.Integer(), primary_key=True))
    metadata.tables["device"].append_column(sa.Column("extra", sa.String(8)))
    engine = make_engine(catalog_url)
    try:
        found = diff(engine, metadata)
    finally:
        engine.dispose()
    assert any("not_migrated" in d for d in found) and any("extra" in d for d in found)


def test_revision_one_is_the_release_before_migrations() -> None:
    """Revision 0001 creates what `create_all` made at commit 4abaf7f: same DDL per table on
    both dialects as today's models for every table the models did not change since."""
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from controller.catalog.migrations.versions import v0001_baseline

    base = baseline_metadata()
    assert set(base.tables) == set(v0001_baseline.TABLES)
    models = all_models()
    # Columns later revisions added to baseline tables (0015: segment.traffic_class).
    added = {"segment": ("traffic_class",)}
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        for name, table in base.tables.items():
            now = str(CreateTable(models.tables[name]).compile(dialect=dialect))
            for column in added.get(name, ()):
                lines = now.splitlines(keepends=True)
                now = "".join(line for line in lines if not line.strip().startswith(column))
            assert str(CreateTable(table).compile(dialect=dialect)) == now, name
            now_table = models.tables[name]
            ddl = {str(CreateIndex(i).compile(dialect=dialect)) for i in table.indexes}
            assert ddl == {str(CreateIndex(i).compile(dialect=dialect)) for i in now_table.indexes}


# --- the release before migrations, with rows -------------------------------------------------


def fill(engine: Engine) -> None:
    """Rows in the 0001-era tables, inserted with plain SQL (as that release's code would)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO device (device_id, county, site, kind, created_at_us, updated_at_us)"
                " VALUES ('nvr-1', '成县', 'site-01', 'nvr', :t, :t)"
            ),
            {"t": T0},
        )
        conn.execute(
            text(
                "INSERT INTO camera (camera_id, device_id, retention_days, resource_class, "
                "max_duration_us, created_at_us, updated_at_us) "
                "VALUES ('cam-1', 'nvr-1', 30, 'II', 0, :t, :t)"
            ),
            {"t": T0},
        )
        conn.execute(
            text(
                "INSERT INTO segment (segment_id, camera_id, device_id, start_us, duration_us, "
                "end_us, size_bytes, sha256, prev_sha256, object_key, agent_flags, chain_ok, "
                "flag, flag_detail, committed_at_us, state) VALUES ('s-1', 'cam-1', 'nvr-1', "
                ":t, 4000000, :e, 1234, :h, '', 'k/s-1.ts', 0, :ok, '', '', :t, 'stored')"
            ),
            {"t": T0, "e": T0 + 4_000_000, "h": "ab" * 32, "ok": True},
        )
        conn.execute(
            text(
                "INSERT INTO user_account (user_id, org_id, role, display_name, password_hash, "
                "disabled, session_version, created_at_us, updated_at_us, last_login_us) "
                "VALUES ('admin-1', 'city', 'admin', '管理员', 'x', :f, 3, :t, :t, 0)"
            ),
            {"t": T0, "f": False},
        )
        conn.execute(
            text(
                "INSERT INTO grant_revocation (grant_id, revoked_at_us, prune_after_us, "
                "by_user, reason) VALUES ('g-1', :t, :t, 'admin-1', 'test')"
            ),
            {"t": T0},
        )


def rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as conn:
        return {
            "device": list(conn.execute(text("SELECT device_id, county FROM device"))),
            "camera": list(conn.execute(text("SELECT camera_id, device_id FROM camera"))),
            "segment": list(
                conn.execute(text("SELECT segment_id, size_bytes, sha256 FROM segment"))
            ),
            "user": list(conn.execute(text("SELECT user_id, display_name FROM user_account"))),
            "revoked": list(conn.execute(text("SELECT seq, grant_id FROM grant_revocation"))),
        }


def test_a_database_at_revision_one_with_rows_upgrades_with_them(catalog_url: str) -> None:
    engine = make_engine(catalog_url, create=False)
    try:
        script = script_directory()
        with engine.begin() as conn:
            run_migrations(conn, script, "0001", stamp=False)
        fill(engine)
        before = rows(engine)
        assert schema_state(engine).kind == BEHIND
        with pytest.raises(SchemaError, match="vigil-controller db upgrade"):
            make_engine(catalog_url)
        report = upgrade_database(engine)
        assert (report.before.kind, report.before.current, report.after) == (BEHIND, "0001", HEAD)
        assert rows(engine) == before and before["segment"] == [("s-1", 1234, "ab" * 32)]
        assert schema_state(engine).kind == CURRENT
        again = upgrade_database(engine)
        assert again.before.kind == CURRENT and "nothing to do" in again.describe()
        assert rows(engine) == before
    finally:
        engine.dispose()
    make_engine(catalog_url).dispose()  # now accepted


def test_a_0017_database_with_gb_devices_upgrades_to_keeping_channel_status(
    catalog_url: str,
) -> None:
    """Revision 0018 adds `gb_channel` (each GB channel's own Catalog Status): a database at
    0017 with an issued, registered NVR and its channel upgrades with them intact; the channel
    has no status yet (unknown: its device's state, as before) until the next Catalog answer,
    which is then kept."""
    from controller.catalog.catalog import Catalog
    from controller.gb28181.devstore import ChannelRow, GbDeviceStore
    from controller.gb28181.manscdp import OFF, UNKNOWN, Channel

    nvr, channel = "62120200001110000001", "62120200001310000001"
    engine = make_engine(catalog_url, create=False)
    clock = ManualClock(T0)
    try:
        with engine.begin() as conn:
            run_migrations(conn, script_directory(), "0017", stamp=False)
        assert "gb_channel" not in tables(engine)
        store = GbDeviceStore(engine, clock)
        store.issue(nvr, "wudu", "东关村", "6212000000")
        store.registered(nvr, "10.0.0.9:5060", 3600)
        Catalog(engine, clock).upsert_camera(channel, nvr)
        before = store.row(nvr)
        assert schema_state(engine).kind == BEHIND
        report = upgrade_database(engine)
        assert (report.before.current, report.after) == ("0017", HEAD)
        assert store.row(nvr) == before
        assert store.all_channels() == {channel: ChannelRow(nvr, UNKNOWN, 0)}
        clock.advance(5.0)
        assert store.set_channels(nvr, [Channel(channel, "东门", status=OFF)]) == 1
        assert store.all_channels() == {channel: ChannelRow(nvr, OFF, T0 + 5_000_000)}
    finally:
        engine.dispose()


def test_a_pre_migration_database_is_checked_stamped_and_upgraded(catalog_url: str) -> None:
    """No alembic_version, the tables of that release (some made lazily, so missing): `db
    upgrade` creates the missing ones, stamps 0001, upgrades; rows intact."""
    engine = make_engine(catalog_url, create=False)
    try:
        base = baseline_metadata()
        lazily = {"job", "job_segment", "job_gone", "audit_entry", "audit_checkpoint"}
        base.create_all(engine, tables=[t for t in base.sorted_tables if t.name not in lazily])
        fill(engine)
        before = rows(engine)
        assert schema_state(engine).kind == LEGACY
        with pytest.raises(SchemaError, match="without schema versions.*db upgrade"):
            make_engine(catalog_url)
        report = upgrade_database(engine)
        assert report.before.kind == LEGACY
        assert set(report.created) == lazily
        assert rows(engine) == before
        assert diff(engine, migrated_schema(engine)) == []  # as if made by the migrations
        assert upgrade_database(engine).before.kind == CURRENT
    finally:
        engine.dispose()


def test_a_pre_migration_database_that_differs_is_not_stamped(catalog_url: str) -> None:
    engine = make_engine(catalog_url, create=False)
    try:
        base = baseline_metadata()
        base.create_all(engine)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE device ADD COLUMN homemade VARCHAR(8)"))
        with pytest.raises(SchemaError, match="homemade.*|not stamped") as raised:
            upgrade_database(engine)
        assert "nothing was changed" in str(raised.value)
        assert "alembic_version" not in tables(engine)
        assert "controller_secret" not in tables(engine)
    finally:
        engine.dispose()


def test_a_newer_schema_is_refused_and_left_alone(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaError, match="newer than this controller.*downgrades"):
            make_engine(catalog_url)
        with pytest.raises(SchemaError, match="newer"):
            upgrade_database(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
                ("9999",)
            ]
    finally:
        engine.dispose()


def test_replicas_starting_together_on_a_new_database_migrate_it_once(catalog_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        try:
            start.wait()
            make_engine(catalog_url).dispose()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    engine = make_engine(catalog_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [(HEAD,)]
            assert read_state(conn, script_directory()).kind == CURRENT
    finally:
        engine.dispose()


# --- serve and the command ------------------------------------------------------------------


def config_for(data: Path, url: str) -> ControllerConfig:
    return ControllerConfig.model_validate({"data_dir": str(data), "database_url": url})


def test_serve_refuses_an_old_schema_naming_the_command(
    catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(catalog_url, create=False)
    try:
        with engine.begin() as conn:
            run_migrations(conn, script_directory(), "0001", stamp=False)
    finally:
        engine.dispose()
    with pytest.raises(StartupError, match=r"revision 0001.*`vigil-controller db upgrade`"):
        open_core(config_for(tmp_path / "data", catalog_url), ManualClock(T0))
    monkeypatch.setenv("VIGIL_DATABASE_URL", catalog_url)
    assert main(["db", "upgrade", "--data-dir", str(tmp_path / "data")]) == 0
    open_core(config_for(tmp_path / "data", catalog_url), ManualClock(T0)).dispose()


def test_db_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    assert main(["db", "current", "--data-dir", str(data)]) == 1
    assert "empty database" in capsys.readouterr().out
    assert main(["db", "upgrade", "--data-dir", str(data)]) == 0
    assert f"empty database -> revision {HEAD}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--data-dir", str(data)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["db", "current", "--data-dir", str(data)]) == 0
    assert f"revision {HEAD} (head): up to date" in capsys.readouterr().out


def test_a_malformed_database_url_is_a_clear_error_and_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("VIGIL_DATABASE_URL", "postgresql://vigil:secret@db:port/vigil")
    assert main(["db", "upgrade", "--data-dir", str(data)]) == 2
    assert "malformed" in caplog.text and "secret" not in caplog.text
    monkeypatch.setenv("VIGIL_DATABASE_URL", "mysql://vigil@db/vigil")
    assert main(["db", "upgrade", "--data-dir", str(data)]) == 2
    assert "only sqlite and postgresql" in caplog.text
    assert not data.exists()


def test_tables_an_election_made_before_the_catalog_was_opened_are_kept(catalog_url: str) -> None:
    """An election (or the fleet) may create its table on a new database before any
    controller opened the catalog: the migrations then create the rest around it."""
    from controller.leader.tables import LEADER_TABLES

    engine = make_engine(catalog_url, create=False)
    try:
        LEADER_TABLES[0].metadata.create_all(engine, tables=LEADER_TABLES)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO leader_lease (name, holder, incarnation, address, epoch, "
                    "expires_at_us, renewed_at_us) VALUES ('scheduler', 'r1', 'i', 'a', 7, 0, 0)"
                )
            )
        assert schema_state(engine).kind == EMPTY
    finally:
        engine.dispose()
    engine = make_engine(catalog_url)
    try:
        assert schema_state(engine).kind == CURRENT
        with engine.connect() as conn:
            assert conn.execute(text("SELECT epoch FROM leader_lease")).all() == [(7,)]
    finally:
        engine.dispose()


def test_vigil_controller_serve_refuses_an_old_schema_and_starts_after_db_upgrade(
    tmp_path: Path,
) -> None:
    """The real command: `serve` exits at once with the fix on stderr; after `db upgrade`
    the same data dir starts (and is stopped here)."""
    import subprocess
    import sys

    from tests.integration.controller_proc import prepare_data_dir

    data = tmp_path / "data"
    prepare_data_dir(data)
    engine = make_engine(f"sqlite:///{data / 'catalog.db'}", create=False)
    try:
        with engine.begin() as conn:
            run_migrations(conn, script_directory(), "0001", stamp=False)
    finally:
        engine.dispose()
    serve = [sys.executable, "-m", "controller", "serve", "--data-dir", str(data)]
    serve += ["--listen", "127.0.0.1:0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env |= {"VIGIL_HTTP__ENABLED": "false", "VIGIL_MQTT__MODE": "off"}
    refused = subprocess.run(serve, capture_output=True, text=True, timeout=120, env=env)
    assert refused.returncode != 0
    assert "cannot start" in refused.stderr
    assert "schema is at revision 0001" in refused.stderr
    assert "run `vigil-controller db upgrade`" in refused.stderr
    upgrade = [sys.executable, "-m", "controller", "db", "upgrade", "--data-dir", str(data)]
    done = subprocess.run(upgrade, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert f"revision 0001 -> revision {HEAD}" in done.stdout
    proc = subprocess.Popen(serve, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        started = ""
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            started += line
            if "cannot start" in line or proc.poll() is not None or "listening on port" in line:
                break
        assert "cannot start" not in started and proc.poll() is None, started
        assert "listening on port" in started
    finally:
        proc.terminate()
        proc.wait(30)


def test_threads_migrating_different_databases_at_once_each_get_their_own(
    tmp_path: Path,
) -> None:
    """Alembic's `op`/`context` are process-wide: without the process lock, a thread ran
    another database's operations on its connection ("table ... already exists")."""
    errors: list[BaseException] = []
    urls = [f"sqlite:///{tmp_path / f'db{i}.db'}" for i in range(6)]
    start = threading.Barrier(len(urls))

    def open_one(url: str) -> None:
        try:
            start.wait()
            make_engine(url).dispose()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for url in urls:
        engine = make_engine(url)
        try:
            assert schema_state(engine).kind == CURRENT
        finally:
            engine.dispose()
