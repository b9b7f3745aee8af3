"""Revision 0004: `scheduler_view`, the leader's plan as the followers' HTTP API shows it.

Only the scheduler leader plans; with `[cluster]` replicas it writes its snapshot (devices,
leases, link load) into this one-row table every few seconds, fenced by its leadership epoch,
and followers answer `/api/v1/plan` and `/api/v1/links` from it (controller/scheduler/board.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_view",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
