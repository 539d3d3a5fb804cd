"""batch jobs: owner (host:pid:token), run count and the studies kept for a resume

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 18:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In place (SQLite 3.35+ adds and drops columns without a batch copy).
    op.add_column("batch_job", sa.Column("owner", sa.String(length=300), nullable=True))
    op.add_column(
        "batch_job", sa.Column("run", sa.Integer(), server_default="1", nullable=False)
    )
    op.add_column("batch_job", sa.Column("plan", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("batch_job", "plan")
    op.drop_column("batch_job", "run")
    op.drop_column("batch_job", "owner")
