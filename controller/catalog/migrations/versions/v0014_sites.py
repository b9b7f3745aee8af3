"""Revision 0014: installer sites and device codes (issue 16).

`install_site`: the sites of a county's list (a village or place, its name as the list has it),
registered with `vigil-provision site add`; `device add` accepts only a registered site of the
device's county. The sites devices already name are registered here with their id as name, so
existing devices stay valid. `install_device_code`: a device's GB/T 28181 code, one device per
code (controller/enrollment/tables.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision: str | None = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "install_site",
        sa.Column("county", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("township", sa.String(64), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("county", "site_id"),
    )
    op.create_table(
        "install_device_code",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("gb_code", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
        sa.UniqueConstraint("gb_code"),
    )
    op.execute(
        "INSERT INTO install_site (county, site_id, name, township, created_by, updated_us) "
        "SELECT DISTINCT county, site, site, '', 'migration 0014', 0 FROM device "
        "WHERE length(county) <= 64 AND length(site) <= 64"
    )


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
