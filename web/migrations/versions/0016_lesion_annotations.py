"""free-text location of a lesion, key image (series/image number) of a measurement

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In place (nullable columns; SQLite 3.35+), never a batch copy that would cascade.
    op.add_column("lesion", sa.Column("location", sa.String(length=120), nullable=True))
    for table in ("lesion_record", "new_lesion"):
        op.add_column(table, sa.Column("series", sa.Integer(), nullable=True))
        op.add_column(table, sa.Column("image", sa.Integer(), nullable=True))
    op.add_column("new_lesion", sa.Column("location", sa.String(length=120), nullable=True))


def downgrade() -> None:
    op.drop_column("new_lesion", "location")
    for table in ("new_lesion", "lesion_record"):
        op.drop_column(table, "image")
        op.drop_column(table, "series")
    op.drop_column("lesion", "location")
