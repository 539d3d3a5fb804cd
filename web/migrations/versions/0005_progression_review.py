"""progression-call review: agreed/queried/answered/overridden events beside the engine call

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "progression_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("engine_timepoint", sa.String(length=32), nullable=False),
        sa.Column("engine_date", sa.Date(), nullable=False),
        sa.Column("engine_rule", sa.String(length=32), nullable=False),
        sa.Column("engine_back_dated", sa.Boolean(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("override_timepoint", sa.String(length=32), nullable=True),
        sa.Column("override_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_progression_review_subject_id"), "progression_review", ["subject_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_progression_review_subject_id"), table_name="progression_review")
    op.drop_table("progression_review")
