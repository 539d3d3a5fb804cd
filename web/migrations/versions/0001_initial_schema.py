"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 15:22:11.726724
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "audit_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_key", sa.String(length=200), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "trial",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_table(
        "arm",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trial_id", "code"),
    )
    op.create_table(
        "subject",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("arm_id", sa.Integer(), nullable=True),
        sa.Column("randomized_on", sa.Date(), nullable=True),
        sa.Column("died_on", sa.Date(), nullable=True),
        sa.Column("new_therapy_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("result_json", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["arm_id"],
            ["arm.id"],
        ),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trial_id", "code"),
    )
    with op.batch_alter_table("subject", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subject_trial_id"), ["trial_id"], unique=False)

    op.create_table(
        "lesion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("nodal", sa.Boolean(), nullable=False),
        sa.Column("treated_on", sa.Date(), nullable=True),
        sa.Column("treatment", sa.String(length=64), nullable=True),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("slice_thickness_tenths", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject_id", "code"),
    )
    with op.batch_alter_table("lesion", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lesion_subject_id"), ["subject_id"], unique=False)

    op.create_table(
        "timepoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject_id", "code"),
    )
    with op.batch_alter_table("timepoint", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_timepoint_subject_id"), ["subject_id"], unique=False)

    op.create_table(
        "lesion_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("timepoint_id", sa.Integer(), nullable=False),
        sa.Column("lesion_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("size_tenths", sa.Integer(), nullable=True),
        sa.Column("fragments_tenths", sa.JSON(), nullable=True),
        sa.Column("merged_into", sa.String(length=32), nullable=True),
        sa.Column("scan_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["lesion_id"], ["lesion.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["timepoint_id"], ["timepoint.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("timepoint_id", "lesion_id"),
    )
    with op.batch_alter_table("lesion_record", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lesion_record_timepoint_id"), ["timepoint_id"], unique=False
        )

    op.create_table(
        "new_lesion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("timepoint_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("equivocal", sa.Boolean(), nullable=False),
        sa.Column("nodal", sa.Boolean(), nullable=False),
        sa.Column("short_axis_tenths", sa.Integer(), nullable=True),
        sa.Column("scan_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["timepoint_id"], ["timepoint.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("timepoint_id", "code"),
    )
    with op.batch_alter_table("new_lesion", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_new_lesion_timepoint_id"), ["timepoint_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("new_lesion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_new_lesion_timepoint_id"))

    op.drop_table("new_lesion")
    with op.batch_alter_table("lesion_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lesion_record_timepoint_id"))

    op.drop_table("lesion_record")
    with op.batch_alter_table("timepoint", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_timepoint_subject_id"))

    op.drop_table("timepoint")
    with op.batch_alter_table("lesion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lesion_subject_id"))

    op.drop_table("lesion")
    with op.batch_alter_table("subject", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subject_trial_id"))

    op.drop_table("subject")
    op.drop_table("arm")
    op.drop_table("api_token")
    op.drop_table("trial")
    op.drop_table("audit_record")
    op.drop_table("app_user")
