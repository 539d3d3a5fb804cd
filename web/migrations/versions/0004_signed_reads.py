"""signed reads: a timepoint read can be signed (password re-entry, meaning) and locked

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 16:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("timepoint", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("locked", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("signed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sign_meaning", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("timepoint", schema=None) as batch_op:
        batch_op.drop_column("sign_meaning")
        batch_op.drop_column("signed_at")
        batch_op.drop_column("signed_by")
        batch_op.drop_column("locked")
