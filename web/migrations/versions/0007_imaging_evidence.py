"""imaging evidence: what imaging_io measured when a follow-up came from an uploaded study

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("timepoint", schema=None) as batch_op:
        batch_op.add_column(sa.Column("imaging_json", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("timepoint", schema=None) as batch_op:
        batch_op.drop_column("imaging_json")
