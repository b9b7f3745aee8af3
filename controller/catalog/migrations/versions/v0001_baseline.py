"""Revision 0001: the catalog as the last release without migrations left it (commit 4abaf7f).

The tables are written out here, not imported from the models: a revision is history and must
not change when a model does. `baseline()` is also what `vigil-controller db upgrade` compares a
database from that release with (it has no `alembic_version`) before stamping it 0001.

Created with the DDL of `baseline().create_all`, exactly what that release's `create_all` made
(the same names, types, indexes and constraints on SQLite and PostgreSQL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import CreateIndex, CreateTable

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

# The names of the tables below (what tells a database of that release from an empty one).
TABLES = (
    "audit_checkpoint",
    "audit_entry",
    "audit_head",
    "device",
    "grant_revocation",
    "grant_seen",
    "grant_use",
    "hold",
    "job",
    "job_gone",
    "retention_record",
    "segment_conflict",
    "segment_flag",
    "segment_media",
    "user_account",
    "camera",
    "job_segment",
    "segment",
)


def baseline() -> sa.MetaData:
    """The tables of that release, built on call (loading this file stays cheap)."""
    metadata = sa.MetaData()
    sa.Table(
        "audit_checkpoint",
        metadata,
        sa.Column("seq", sa.BigInteger(), primary_key=True, nullable=False, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("prev_checkpoint_seq", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(256), nullable=False),
    )

    sa.Table(
        "audit_entry",
        metadata,
        sa.Column("seq", sa.BigInteger(), primary_key=True, nullable=False, autoincrement=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(256), nullable=False),
        sa.Column("actor_user", sa.String(256), nullable=False),
        sa.Column("actor_org", sa.String(256), nullable=False),
        sa.Column("camera_id", sa.String(256), nullable=False),
        sa.Column("case_id", sa.String(256), nullable=False),
        sa.Column("grant_id", sa.String(256), nullable=False),
        sa.Column("outcome", sa.String(256), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Index("ix_audit_entry_at", "at_us"),
        sa.Index("ix_audit_entry_camera_at", "camera_id", "at_us"),
        sa.Index("ix_audit_entry_case_at", "case_id", "at_us"),
        sa.Index("ix_audit_entry_grant", "grant_id"),
        sa.Index("ix_audit_entry_user_at", "actor_user", "at_us"),
    )

    sa.Table(
        "audit_head",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("last_checkpoint_seq", sa.BigInteger(), nullable=False),
    )

    sa.Table(
        "device",
        metadata,
        sa.Column("device_id", sa.String(128), primary_key=True, nullable=False),
        sa.Column("county", sa.String(128), nullable=False),
        sa.Column("site", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
    )

    sa.Table(
        "grant_revocation",
        metadata,
        # INTEGER on SQLite: only "INTEGER PRIMARY KEY" autoincrements there.
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("grant_id", sa.String(32), nullable=False, unique=True),
        sa.Column("revoked_at_us", sa.BigInteger(), nullable=False),
        sa.Column("prune_after_us", sa.BigInteger(), nullable=False),
        sa.Column("by_user", sa.String(256), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Index("ix_grant_revocation_prune_after_us", "prune_after_us"),
    )

    sa.Table(
        "grant_seen",
        metadata,
        sa.Column("grant_id", sa.String(32), primary_key=True, nullable=False),
        sa.Column("parent_id", sa.String(32), nullable=False),
        sa.Column("issuer_org", sa.String(128), nullable=False),
        sa.Column("holder_org", sa.String(128), nullable=False),
        sa.Column("holder_user", sa.String(128), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_us", sa.BigInteger(), nullable=False),
    )

    sa.Table(
        "grant_use",
        metadata,
        sa.Column("grant_id", sa.String(32), primary_key=True, nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("use_limit", sa.Integer(), nullable=False),
    )

    sa.Table(
        "hold",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("released_at_us", sa.BigInteger(), nullable=True),
        sa.Index("ix_hold_camera_id", "camera_id"),
        sa.Index("ix_hold_case_id", "case_id"),
    )

    sa.Table(
        "job",
        metadata,
        sa.Column("job_id", sa.String(32), primary_key=True, nullable=False),
        sa.Column("case_id", sa.String(96), nullable=False),
        sa.Column("cameras", sa.String(8192), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("traffic_class", sa.Integer(), nullable=False),
        sa.Column("deadline_us", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.Column("finished_at_us", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("bytes_done", sa.BigInteger(), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), nullable=False),
        sa.Column("segments_done", sa.Integer(), nullable=False),
        sa.Column("segments_total", sa.Integer(), nullable=False),
        sa.Column("eta_us", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.String(1024), nullable=False),
        sa.Column("cameras_status", sa.String(65536), nullable=False),
        sa.Column("catalog_holds", sa.String(4096), nullable=False),
        sa.Index("ix_job_case_id", "case_id"),
        sa.Index("ix_job_state", "state"),
    )

    sa.Table(
        "job_gone",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Index("ix_job_gone_job_id", "job_id"),
    )

    sa.Table(
        "retention_record",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("segment_id", sa.String(128), nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(1024), nullable=False),
        sa.Column("deleted_at_us", sa.BigInteger(), nullable=False),
        sa.Index("ix_retention_record_camera_id", "camera_id"),
        sa.Index("ix_retention_record_deleted_at_us", "deleted_at_us"),
        sa.Index("ix_retention_record_segment_id", "segment_id"),
    )

    sa.Table(
        "segment_conflict",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("segment_id", sa.String(128), nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("existing_sha256", sa.String(64), nullable=False),
        sa.Column("offered_sha256", sa.String(64), nullable=False),
        sa.Column("recorded_at_us", sa.BigInteger(), nullable=False),
        sa.Index("ix_segment_conflict_camera_id", "camera_id"),
        sa.Index("ix_segment_conflict_segment_id", "segment_id"),
    )

    sa.Table(
        "segment_flag",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("segment_id", sa.String(128), nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("flag", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(1024), nullable=False),
        sa.Column("flagged_at_us", sa.BigInteger(), nullable=False),
        sa.Index("ix_segment_flag_camera_id", "camera_id"),
        sa.Index("ix_segment_flag_segment_id", "segment_id"),
    )

    sa.Table(
        "segment_media",
        metadata,
        sa.Column("segment_id", sa.String(128), primary_key=True, nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("video_codec", sa.String(32), nullable=False),
        sa.Column("video_profile", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("frame_rate", sa.Float(), nullable=False),
        sa.Column("audio_codec", sa.String(32), nullable=False),
        sa.Column("audio_sample_rate", sa.Integer(), nullable=False),
        sa.Column("audio_channels", sa.Integer(), nullable=False),
        sa.Column("probe_error", sa.String(512), nullable=False),
        sa.Column("probe_us", sa.BigInteger(), nullable=False),
        sa.Index("ix_segment_media_camera_start", "camera_id", "start_us"),
    )

    sa.Table(
        "user_account",
        metadata,
        sa.Column("user_id", sa.String(64), primary_key=True, nullable=False),
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.Column("last_login_us", sa.BigInteger(), nullable=False),
        sa.Index("ix_user_account_org_id", "org_id"),
    )

    sa.Table(
        "camera",
        metadata,
        sa.Column("camera_id", sa.String(128), primary_key=True, nullable=False),
        sa.Column("device_id", sa.String(128), sa.ForeignKey("device.device_id"), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("resource_class", sa.String(8), nullable=False),
        sa.Column("max_duration_us", sa.BigInteger(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.Index("ix_camera_device_id", "device_id"),
    )

    sa.Table(
        "job_segment",
        metadata,
        sa.Column(
            "job_id", sa.String(32), sa.ForeignKey("job.job_id"), primary_key=True, nullable=False
        ),
        sa.Column("segment_id", sa.String(128), primary_key=True, nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("duration_us", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
    )

    sa.Table(
        "segment",
        metadata,
        sa.Column("segment_id", sa.String(128), primary_key=True, nullable=False),
        sa.Column("camera_id", sa.String(128), sa.ForeignKey("camera.camera_id"), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("duration_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("prev_sha256", sa.String(64), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("agent_flags", sa.BigInteger(), nullable=False),
        sa.Column("chain_ok", sa.Boolean(), nullable=False),
        sa.Column("flag", sa.String(32), nullable=False),
        sa.Column("flag_detail", sa.String(1024), nullable=False),
        sa.Column("committed_at_us", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Index("ix_segment_camera_start", "camera_id", "start_us"),
        sa.Index("ix_segment_flag", "flag"),
        sa.Index("ix_segment_state", "state"),
    )
    return metadata


def upgrade() -> None:
    bind = op.get_bind()
    metadata = baseline()
    if bind.dialect.name != "postgresql":
        metadata.create_all(bind, checkfirst=False)
        return
    # PostgreSQL: the same DDL create_all would send, in one round trip (it is most of a new
    # database's set-up time, and every PostgreSQL test starts from a new database).
    ddl = [str(CreateTable(t).compile(dialect=bind.dialect)) for t in metadata.sorted_tables]
    for table in metadata.sorted_tables:
        ddl += [str(CreateIndex(i).compile(dialect=bind.dialect)) for i in table.indexes]
    bind.exec_driver_sql(";\n".join(ddl))


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
