"""Revision 0015: the traffic class a segment was uploaded under, and upload timeliness per
class and camera-hour (issue 15: "upload timeliness, p50/p95, per traffic class").

- `segment.traffic_class`: the class (controller.traffic.TrafficClass value) of the lease
  the scheduler granted for the segment; 0 = not known (uploaded without a lease, before
  this revision, or its lease was lost with a leader change). Set once, by the scheduler
  leader when it sees the leased segment committed, never from what an agent says.
- `class_hour`: per camera, UTC hour (the segment's start) and class, the segments
  classified and their upload-delay histogram (the same buckets as `camera_hour`'s).
  Uploads not classified are `camera_hour`'s histogram minus these rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision: str | None = "0014"
branch_labels = None
depends_on = None

_DELAYS = (10, 30, 60, 300, 900, 3600, 14400, 86400)


def upgrade() -> None:
    with op.batch_alter_table("segment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("traffic_class", sa.SmallInteger(), nullable=False, server_default="0")
        )
    op.create_table(
        "class_hour",
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("hour_us", sa.BigInteger(), nullable=False),
        sa.Column("traffic_class", sa.SmallInteger(), nullable=False),
        sa.Column("segments", sa.BigInteger(), nullable=False),
        *(sa.Column(f"delay_le_{b}", sa.BigInteger(), nullable=False) for b in _DELAYS),
        sa.Column("delay_over", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("camera_id", "hour_us", "traffic_class"),
    )
    with op.batch_alter_table("class_hour", schema=None) as batch_op:
        batch_op.create_index("ix_class_hour_hour", ["hour_us"], unique=False)


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
