"""a subject's images are bound to one patient (the pseudonymous key of its first study)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 15:00:00

``subject.imaging_key``: empty for existing subjects; set by the next saved study. An
SQLite ``ADD COLUMN`` in place, not a batch copy (which would cascade-delete the subject's
rows on SQLite).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("subject", sa.Column("imaging_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("subject", "imaging_key")
