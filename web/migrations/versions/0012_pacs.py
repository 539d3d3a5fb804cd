"""a trial's PACS (DICOMweb URL) and the studies pulled from it, awaiting a reader

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 15:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In place (SQLite 3.35+), not a batch copy: copying trial would cascade-delete.
    op.add_column("trial", sa.Column("pacs_url", sa.String(length=500), nullable=True))
    op.create_table(
        "pacs_study",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(length=128), nullable=False),
        sa.Column("timepoint", sa.String(length=64), nullable=False),
        sa.Column("study_date", sa.Date(), nullable=True),
        sa.Column("measured", sa.JSON(), nullable=False),
        sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pulled_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject_id", "study_uid"),
    )
    op.create_index(op.f("ix_pacs_study_subject_id"), "pacs_study", ["subject_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_pacs_study_subject_id"), table_name="pacs_study")
    op.drop_table("pacs_study")
    op.drop_column("trial", "pacs_url")
