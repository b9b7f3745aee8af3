"""Revision 0012: reserved.

For issue 12 (the stores that still call create_all get their tables from migrations).

Empty until that work lands: revision numbers were reserved in order so that several pieces of
work could each add their tables without two revisions claiming the same parent.
"""

from __future__ import annotations

revision = "0012"
down_revision: str | None = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
