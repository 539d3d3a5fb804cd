"""independent central review: two blinded reads per subject and adjudication

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 16:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trial", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("central_review", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "central_read",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("reader", sa.String(length=64), nullable=False),
        sa.Column("case_json", sa.JSON(), nullable=False),
        sa.Column("result_json", sa.JSON(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject_id", "reader"),
        sa.UniqueConstraint("subject_id", "slot"),
    )
    op.create_index(op.f("ix_central_read_subject_id"), "central_read", ["subject_id"])
    op.create_table(
        "adjudication",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("accepted_slot", sa.Integer(), nullable=False),
        sa.Column("disagreement", sa.Text(), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("adjudicator", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject_id"),
    )


def downgrade() -> None:
    op.drop_table("adjudication")
    op.drop_index(op.f("ix_central_read_subject_id"), table_name="central_read")
    op.drop_table("central_read")
    with op.batch_alter_table("trial", schema=None) as batch_op:
        batch_op.drop_column("central_review")
