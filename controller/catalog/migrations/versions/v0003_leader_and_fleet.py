"""Revision 0003: the tables replicas share: the leadership lease and the fleet's shared state.

`leader_lease` (controller/leader/tables.py): one row per elected role, with its fencing
epoch. `fleet_health`, `fleet_alert`, `fleet_setting` (controller/fleet/shared.py): the latest
health per device written by whichever replica received it, the leader's active alerts, and
the shared-subscription group name. Written from the models as they landed (commits 5dd21cc
and 8c5d803), before migrations existed. Those owners create them on first use too
(`ensure_tables`/`create_all`), so a database may hold some already, e.g. when an election
ran before any controller opened the catalog: each is created only when absent.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def _absent(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _absent("leader_lease"):
        _leader_lease()
    if _absent("fleet_alert"):
        _fleet_alert()
    if _absent("fleet_health"):
        _fleet_health()
    if _absent("fleet_setting"):
        _fleet_setting()


def _leader_lease() -> None:
    op.create_table(
        "leader_lease",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("incarnation", sa.String(32), nullable=False),
        sa.Column("address", sa.String(256), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=False),
        sa.Column("renewed_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def _fleet_alert() -> None:
    op.create_table(
        "fleet_alert",
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raised_us", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "kind", "camera_id"),
    )


def _fleet_health() -> None:
    op.create_table(
        "fleet_health",
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("session", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("seen_us", sa.BigInteger(), nullable=False),
        sa.Column("skew_s", sa.Float(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("replica", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_index("ix_fleet_health_seen", "fleet_health", ["seen_us"], unique=False)


def _fleet_setting() -> None:
    op.create_table(
        "fleet_setting",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
