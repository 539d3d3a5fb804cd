"""trial membership: users reach only the trials they are assigned to

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 14:30:00

* ``trial_member``: one row per user and trial (who added it, when).
* Existing users keep what they could reach: every user who is not an admin becomes a
  member of every existing trial (``added_by`` says "migration 0010"). Narrow it with
  ``recist users assign NAME --remove TRIAL``.
* Roles are not migrated: an ``admin`` no longer enters, signs or reviews clinical data
  (segregation of duties). Give an administrator who also reads a clinical role with
  ``recist users set-role NAME admin+reader``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trial_member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trial_id", "user_id"),
    )
    bind = op.get_bind()
    users = sa.table("app_user", sa.column("id", sa.Integer()), sa.column("role", sa.String()))
    trials = sa.table("trial", sa.column("id", sa.Integer()))
    members = sa.table(
        "trial_member",
        sa.column("trial_id", sa.Integer()),
        sa.column("user_id", sa.Integer()),
        sa.column("added_at", sa.DateTime(timezone=True)),
        sa.column("added_by", sa.String()),
    )
    now = datetime.now(UTC)
    user_ids = [row.id for row in bind.execute(sa.select(users).where(users.c.role != "admin"))]
    trial_ids = [row.id for row in bind.execute(sa.select(trials.c.id))]
    rows = [
        {"trial_id": t, "user_id": u, "added_at": now, "added_by": "migration 0010"}
        for t in trial_ids
        for u in user_ids
    ]
    if rows:
        bind.execute(members.insert(), rows)


def downgrade() -> None:
    op.drop_table("trial_member")
