"""Revision 0013: `loss_event.fact_id`, a loss stored once per device and fact, not per message.

An agent resends an eviction report until the controller confirms it stored it (issue 15:
reports made while the controller was away or killed before its batched write). A resend
travels in a new MQTT session with a new sequence number, so the old key (device, session,
seq) would count it twice. The key is now (device, fact_id), the fact id being the evicted
segment's id; rows from before are given `s<session>:<seq>`, which keeps them unique, and
reports from agents that send no fact id get the same form.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("loss_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fact_id", sa.String(128), nullable=False, server_default=""))
    op.execute(
        "UPDATE loss_event SET fact_id = 's' || CAST(session AS TEXT) || ':' || "
        "CAST(seq AS TEXT) WHERE fact_id = ''"
    )
    with op.batch_alter_table("loss_event", schema=None) as batch_op:
        batch_op.alter_column("fact_id", server_default=None)
        batch_op.drop_constraint("uq_loss_event_origin", type_="unique")
        batch_op.create_unique_constraint("uq_loss_event_fact", ["device_id", "fact_id"])


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
