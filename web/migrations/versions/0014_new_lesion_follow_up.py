"""iRECIST follow-up of new lesions: a new lesion's size, size word, category and state

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-05 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# (column, type): size_mm in integer units (R-EXACT), or its word (too_small, absent,
# not_evaluated); category target / non-target (I-NEW-1); state of a new non-target (I-NEW-4).
COLUMNS = (
    ("size_units", sa.Integer()),
    ("size_state", sa.String(length=16)),
    ("category", sa.String(length=16)),
    ("state", sa.String(length=16)),
)


def upgrade() -> None:
    # In place (SQLite 3.35+), not a batch copy: nullable columns, no default to fill.
    for name, kind in COLUMNS:
        op.add_column("new_lesion", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for name, _kind in reversed(COLUMNS):
        op.drop_column("new_lesion", name)
