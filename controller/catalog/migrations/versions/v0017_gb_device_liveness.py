"""Revision 0017: a GB/T 28181 device's liveness in its row, for the fleet view of every replica.

`gb_device` gains `last_seen_us` (its last REGISTER or keepalive, written at most every 30 s),
`unanswered_us` (when a request Vigil sent it, an INVITE, went unanswered after it was last
heard from; 0: answering) and `replica` (the controller replica it registered to: that one
holds its SIP dialogs and records its channels). Keepalives were kept in memory only, so a
console served by another replica could not say whether the device was alive.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision: str | None = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gb_device", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_seen_us", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("unanswered_us", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("replica", sa.String(100), nullable=False, server_default=""))


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
