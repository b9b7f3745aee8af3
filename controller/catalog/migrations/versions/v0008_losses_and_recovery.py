"""Revision 0008: reserved.

For issue 19 (crash-only recovery): agent losses recorded in the catalog, durable commit queue.

Empty until that work lands: revision numbers were reserved in order so that several pieces of
work could each add their tables without two revisions claiming the same parent.
"""

from __future__ import annotations

revision = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
