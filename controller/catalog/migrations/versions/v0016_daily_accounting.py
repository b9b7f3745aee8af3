"""Revision 0016: the loss accounting and the upload timeliness per local day (issue 15: the
month's report read 12.3 M hourly rows, 19 s of SQL; now ≤ 31 day rows per camera).

- `camera_day`: `camera_hour`'s columns summed per camera and local day (Asia/Shanghai, the
  day the report's `--from 2026-11-01` means); `day_us` is the local midnight in UTC
  microseconds; `video_height` the day's largest.
- `class_day`: `class_hour` summed the same way, per camera, local day and traffic class.

Both are kept by the writes that keep the hourly rows, in the same transactions
(controller/catalog/daily.py); an existing database is back-filled here from its hourly rows
(one INSERT ... SELECT each), so the day rows equal the sums of their hours from the start.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision: str | None = "0015"
branch_labels = None
depends_on = None

_DELAYS = tuple(f"delay_le_{b}" for b in (10, 30, 60, 300, 900, 3600, 14400, 86400)) + (
    "delay_over",
)
_SUMS = (
    "recorded_us",
    "uploaded_us",
    "evicted_us",
    "gap_us",
    "segments",
    "uploaded_bytes",
    "evicted_bytes",
    *_DELAYS,
)
# Asia/Shanghai is UTC+8 all year (no daylight saving since 1991).
_OFFSET_US, _DAY_US = 8 * 3600 * 1_000_000, 24 * 3600 * 1_000_000


def upgrade() -> None:
    op.create_table(
        "camera_day",
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("day_us", sa.BigInteger(), nullable=False),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in _SUMS),
        sa.Column("video_height", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("camera_id", "day_us"),
    )
    op.create_table(
        "class_day",
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("day_us", sa.BigInteger(), nullable=False),
        sa.Column("traffic_class", sa.SmallInteger(), nullable=False),
        sa.Column("segments", sa.BigInteger(), nullable=False),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in _DELAYS),
        sa.PrimaryKeyConstraint("camera_id", "day_us", "traffic_class"),
    )
    backfill(op.get_bind())
    with op.batch_alter_table("camera_day", schema=None) as batch_op:
        batch_op.create_index("ix_camera_day_day", ["day_us"], unique=False)
    with op.batch_alter_table("class_day", schema=None) as batch_op:
        batch_op.create_index("ix_class_day_day", ["day_us"], unique=False)


def backfill(conn: sa.engine.Connection) -> None:
    """Fill the (empty) day tables from the hourly ones: what the incremental upkeep would
    have written had it run from the start (bench/report_seed.py runs it after a bulk load)."""
    for hourly, daily, extra, sums, maxes in (
        ("camera_hour", "camera_day", (), _SUMS, ("video_height",)),
        ("class_hour", "class_day", ("traffic_class",), ("segments", *_DELAYS), ()),
    ):
        values = (*sums, *maxes)
        src = sa.table(hourly, *(sa.column(c) for c in ("camera_id", "hour_us", *extra, *values)))
        hour = src.c.hour_us
        # Literals, not parameters: PostgreSQL must see the GROUP BY expression as the same.
        day = hour - (hour + sa.literal_column(str(_OFFSET_US))) % sa.literal_column(str(_DAY_US))
        keys = (src.c.camera_id, day, *(src.c[c] for c in extra))
        query = sa.select(
            *keys,
            *(sa.func.sum(src.c[c]) for c in sums),
            *(sa.func.max(src.c[c]) for c in maxes),
        ).group_by(*keys)
        dst = sa.table(daily, *(sa.column(c) for c in ("camera_id", "day_us", *extra, *values)))
        conn.execute(dst.insert().from_select(list(dst.c.keys()), query))


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
