"""Revision 0006: persistent fleet history and hourly loss accounting (issue 15, KPIs).

`state_change` (device/camera/image/alert transitions, written in batches by the fleet's
history writer), `loss_event` (agents' unsent-evicted reports, once per device/session/seq, so
losses reach the catalog and survive restarts) and `camera_hour` (recorded, uploaded, evicted
and gap time per camera and UTC hour plus an upload-delay histogram, kept current by ingest and
the loss writer). Models: controller/catalog/history_models.py.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "camera_hour",
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("hour_us", sa.BigInteger(), nullable=False),
        sa.Column("recorded_us", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_us", sa.BigInteger(), nullable=False),
        sa.Column("evicted_us", sa.BigInteger(), nullable=False),
        sa.Column("gap_us", sa.BigInteger(), nullable=False),
        sa.Column("segments", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_bytes", sa.BigInteger(), nullable=False),
        sa.Column("evicted_bytes", sa.BigInteger(), nullable=False),
        sa.Column("delay_le_10", sa.BigInteger(), nullable=False),
        sa.Column("delay_le_30", sa.BigInteger(), nullable=False),
        sa.Column("delay_le_60", sa.BigInteger(), nullable=False),
        sa.Column("delay_le_300", sa.BigInteger(), nullable=False),
        sa.Column("delay_le_900", sa.BigInteger(), nullable=False),
        sa.Column("delay_le_3600", sa.BigInteger(), nullable=False),
        sa.Column("delay_le_14400", sa.BigInteger(), nullable=False),
        sa.Column("delay_le_86400", sa.BigInteger(), nullable=False),
        sa.Column("delay_over", sa.BigInteger(), nullable=False),
        sa.Column("video_height", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("camera_id", "hour_us"),
    )
    with op.batch_alter_table("camera_hour", schema=None) as batch_op:
        batch_op.create_index("ix_camera_hour_hour", ["hour_us"], unique=False)

    op.create_table(
        "loss_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("session", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(1024), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "session", "seq", name="uq_loss_event_origin"),
    )
    with op.batch_alter_table("loss_event", schema=None) as batch_op:
        batch_op.create_index("ix_loss_event_camera_start", ["camera_id", "start_us"], unique=False)

    op.create_table(
        "state_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(16), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("state_change", schema=None) as batch_op:
        batch_op.create_index("ix_state_change_at", ["at_us"], unique=False)
        batch_op.create_index(
            "ix_state_change_subject_at",
            ["subject", "device_id", "camera_id", "at_us"],
            unique=False,
        )


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
