"""revocable sessions, expiring tokens, failed logins per address, users' full names

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00

* ``user_session``: server-side browser sessions (the cookie carries a random id; its
  SHA-256 is stored), ended by logout, password change, deactivation or timeout.
* ``api_token``: ``expires_at``, ``revoked_at`` (instead of the ``revoked`` flag) and
  ``last_used_at``. Tokens issued before this migration expire 90 days after it (not 90
  days after they were issued: that would end automation at once without warning);
  revoked ones keep being revoked, dated at the migration.
* ``api_token_use``: one row per token, route family and hour (one audit record each).
* ``login_failure``: failed password checks per client address, for the per-address
  limit (in the database, so that a restart does not reset it).
* ``app_user.full_name`` (empty for existing users).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

EXISTING_TOKENS_DAYS = 90


def upgrade() -> None:
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("full_name", sa.String(length=200), server_default="", nullable=False)
        )

    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    now = datetime.now(UTC)
    tokens = sa.table(
        "api_token",
        sa.column("revoked", sa.Boolean()),
        sa.column("expires_at", sa.DateTime(timezone=True)),
        sa.column("revoked_at", sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    bind.execute(tokens.update().values(expires_at=now + timedelta(days=EXISTING_TOKENS_DAYS)))
    bind.execute(tokens.update().where(tokens.c.revoked == sa.true()).values(revoked_at=now))
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.alter_column(
            "expires_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch_op.drop_column("revoked")

    op.create_table(
        "api_token_use",
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["api_token.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_id", "family", "hour"),
    )
    op.create_table(
        "user_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sid_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=32), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sid_sha256"),
    )
    op.create_index(op.f("ix_user_session_user_id"), "user_session", ["user_id"], unique=False)
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_login_failure_address"), "login_failure", ["address"], unique=False)
    op.create_index(op.f("ix_login_failure_at"), "login_failure", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_login_failure_at"), table_name="login_failure")
    op.drop_index(op.f("ix_login_failure_address"), table_name="login_failure")
    op.drop_table("login_failure")
    op.drop_index(op.f("ix_user_session_user_id"), table_name="user_session")
    op.drop_table("user_session")
    op.drop_table("api_token_use")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revoked", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    tokens = sa.table(
        "api_token",
        sa.column("revoked", sa.Boolean()),
        sa.column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.get_bind().execute(
        tokens.update().where(tokens.c.revoked_at.is_not(None)).values(revoked=True)
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("expires_at")
    # Not a batch: copying app_user on SQLite would drop the old table, and with it (ON
    # DELETE CASCADE) every token; SQLite 3.35+ drops a column in place.
    op.drop_column("app_user", "full_name")
