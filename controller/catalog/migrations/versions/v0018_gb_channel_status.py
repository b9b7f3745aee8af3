"""Revision 0018: each GB/T 28181 channel's own Catalog `Status` (issue 17 part 2).

`gb_channel` (controller/gb28181/tables.py): one row per video channel a device's Catalog
answer listed, keyed by the channel's 20-digit code, with the `Status` that answer gave it
(on, off, unknown) and when it arrived. Until now a channel counted as online whenever its
device did, so an NVR reporting one camera OFF still showed (and cascaded upward) that camera
as online. Channels stored before this revision have no row: their status is unknown, which
counts as their device's state (what it was), until the device's next Catalog answer.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision: str | None = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gb_channel",
        sa.Column("camera_id", sa.String(20), nullable=False),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("status", sa.String(8), nullable=False, server_default="unknown"),
        sa.Column("reported_us", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("camera_id"),
    )


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
