"""Revision 0014: reserved.

For issue 16 (installer sites, `site add`).

Empty until that work lands: revision numbers were reserved in order so that several pieces of
work could each add their tables without two revisions claiming the same parent.
"""

from __future__ import annotations

revision = "0014"
down_revision: str | None = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
