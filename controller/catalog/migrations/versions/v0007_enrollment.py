"""Revision 0007: enrollment (issue 16): single-use enrollment tokens and the device
certificates the enrollment service signed, with their revocations,
and retired devices (`device_revocation`).

`enroll_token` and `device_cert` (controller/enrollment/tables.py): the token is stored only
as a SHA-256; a certificate is known by its serial, and `revoked_us` > 0 makes every replica
refuse it (controller/enrollment/guard.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enroll_token",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("county", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("issued_by", sa.String(128), nullable=False),
        sa.Column("issued_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("used_us", sa.BigInteger(), nullable=False),
        sa.Column("used_key_fp", sa.String(64), nullable=False),
        sa.Column("cancelled_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_enroll_token_device_id", "enroll_token", ["device_id"], unique=False)
    op.create_table(
        "device_cert",
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("key_fp", sa.String(64), nullable=False),
        sa.Column("issued_us", sa.BigInteger(), nullable=False),
        sa.Column("not_after_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_us", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("serial"),
    )
    op.create_index("ix_device_cert_device_id", "device_cert", ["device_id"], unique=False)
    op.create_index("ix_device_cert_revoked_us", "device_cert", ["revoked_us"], unique=False)
    op.create_table(
        "device_revocation",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("revoked_us", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
