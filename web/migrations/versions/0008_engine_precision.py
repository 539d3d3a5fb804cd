"""sizes at the engine's precision: integer 1/10 000 mm instead of tenths of a mm

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 12:30:00

R-EXACT: the engine compares sizes as recorded (``recist.lesions.UNITS_PER_MM`` units per
mm). Storing tenths rounded 35.04 mm to 35.0 mm, which turned an SD (−29.9 %) into a PR
(−30.0 %) once stored. Every size column now holds engine lengths; existing values are
multiplied by 1000 (a tenth is 1000 units), so nothing stored changes meaning.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FACTOR = 1000  # engine units per tenth of a mm (recist.lesions.UNITS_PER_MM // 10)

COLUMNS = (
    ("lesion", "slice_thickness_tenths", "slice_thickness_units"),
    ("lesion_record", "size_tenths", "size_units"),
    ("new_lesion", "short_axis_tenths", "short_axis_units"),
)


def _scale_fragments(column: str, *, up: bool) -> None:
    """Scale the JSON lists of fragment sizes in ``column`` (up: ×1000; down: rounded)."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(f"SELECT id, {column} FROM lesion_record WHERE {column} IS NOT NULL")  # noqa: S608
    ).all()
    for row_id, raw in rows:
        values: Any = json.loads(raw) if isinstance(raw, str) else raw
        scaled = [int(v) * FACTOR if up else (int(v) + FACTOR // 2) // FACTOR for v in values]
        bind.execute(
            sa.text(f"UPDATE lesion_record SET {column} = :v WHERE id = :id"),  # noqa: S608
            {"v": json.dumps(scaled), "id": row_id},
        )


def _rename(table: str, old: str, new: str) -> None:
    # RENAME COLUMN in place (SQLite ≥ 3.25, PostgreSQL): a batch copy of the table would
    # drop the old one, and with foreign keys on SQLite would cascade-delete its records.
    op.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")


def upgrade() -> None:
    for table, old, new in COLUMNS:
        # Table and column names are the constants above, never input.
        op.execute(f"UPDATE {table} SET {old} = {old} * {FACTOR} WHERE {old} IS NOT NULL")  # noqa: S608
        _rename(table, old, new)
    _scale_fragments("fragments_tenths", up=True)
    _rename("lesion_record", "fragments_tenths", "fragments_units")


def downgrade() -> None:
    _rename("lesion_record", "fragments_units", "fragments_tenths")
    for table, old, new in COLUMNS:
        _rename(table, new, old)
        # Rounded half up to the tenth: a downgrade loses what was finer than 0.1 mm.
        half = FACTOR // 2
        op.execute(
            f"UPDATE {table} SET {old} = ({old} + {half}) / {FACTOR} WHERE {old} IS NOT NULL"  # noqa: S608
        )
    _scale_fragments("fragments_tenths", up=False)
