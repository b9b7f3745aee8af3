"""Revision 0005: `camera_directory`, the console's resource directory (issue 14).

One row per described camera: name, township, village, lat/lon and the 20-digit GB/T 28181
code (unique), kept apart from `camera` so ingest and people never overwrite each other's
facts (controller/directory/models.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "camera_directory",
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("township", sa.String(64), nullable=False),
        sa.Column("village", sa.String(64), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("gb_code", sa.String(20), nullable=True),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["camera.camera_id"]),
        sa.PrimaryKeyConstraint("camera_id"),
        sa.UniqueConstraint("gb_code"),
    )
    op.create_index("ix_camera_directory_place", "camera_directory", ["township", "village"])


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
