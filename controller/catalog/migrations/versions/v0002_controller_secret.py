"""Revision 0002: `controller_secret`, the keys every controller replica must share.

The URL-signing HMAC key (and the session key derived from it), the grant root key and the
evidence key used to live only in each controller's `<data_dir>/keys/`; replicas on one
database now take them from this table (controller/grants/keys.py, docs/security.md).
`value` is base64 of the key, or of nonce + AES-GCM ciphertext when `scheme` says it is
wrapped with the configured key-encryption key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controller_secret",
        sa.Column("name", sa.String(64), primary_key=True, nullable=False),
        sa.Column("scheme", sa.String(16), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
