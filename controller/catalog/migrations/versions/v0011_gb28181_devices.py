"""Revision 0011: GB/T 28181 devices registered into Vigil (issue 17 part 2).

`gb_device` (controller/gb28181/tables.py): one row per NVR or camera allowed to REGISTER over
GB/T 28181, keyed by its 20-digit code, with the digest HA1 (never the password) and its last
registration. Its channels become ordinary `camera` rows of a `device` row of kind `gb28181`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gb_device",
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("ha1", sa.String(32), nullable=False),
        sa.Column("realm", sa.String(64), nullable=False),
        sa.Column("county", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("issued_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_us", sa.BigInteger(), nullable=False),
        sa.Column("registered_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("contact", sa.String(64), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
