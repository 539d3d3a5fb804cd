"""The central reader's RECIST worksheet: lesion rows × visit columns, as an HTML form.

A blinded central reader (:mod:`web.services.central`) records a read the way radiologists keep a
RECIST worksheet: one row per lesion (target, non-target or new lesion; its site; whether
it is a lymph node), one column per visit (visit name and scan date; the first column is
the baseline), and one short entry per cell. :meth:`Sheet.to_read` turns the posted
fields into a read of the case contract (``docs/contracts.md``): ``{"lesions": [...],
"timepoints": [...]}``; :meth:`Sheet.from_read` lays a read out again.

The cell notation (shown as a legend on the page, case-insensitive):

=============  ===============================================================
target         ``32`` or ``32.5`` mm (non-nodal: longest diameter; node: short
               axis) · ``TS`` too small to measure (counts 5 mm) · ``A`` absent
               (0 mm) · ``NE`` not evaluated · ``10+8`` split into fragments
               (R-SPLIT) · ``>T01`` merged into target T01 (R-MERGE; ``→T01``
               and ``->T01`` too)
non-target     ``P`` present · ``A`` absent · ``PD`` unequivocal progression
               (R-NT-PD) · ``NE`` not evaluated; blank at baseline is ``P``
new lesion     blank: not seen · ``N`` new · ``EQ`` equivocal (R-NEW-2); a new
               lymph node takes its short axis: ``N 12`` (R-NEW-1: counts from
               10 mm)
=============  ===============================================================

A blank column (no visit, no date, no entry) and a blank row (no id, no site, no entry)
are left out, so the page can offer spare ones. Every error names the lesion, the visit
and the field, and the form field (``error.field``) so the page can mark the cell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from web.models import SITES
from web.services import InvalidInput

ROLES = ("target", "non-target", "new")
ROLE_LABELS = {"target": "target", "non-target": "non-target", "new": "new lesion"}
ID_PREFIX = {"target": "T", "non-target": "NT", "new": "NL"}

# A fresh sheet: the baseline and three follow-up columns; five target rows (R-SEL-1 allows
# at most five), three non-target rows and two new-lesion rows.
FIRST_COLUMNS = 4
FIRST_ROWS = (("target", 5), ("non-target", 3), ("new", 2))
# "Add columns" / "add rows" without JavaScript re-render the sheet with this many more.
MORE_COLUMNS = 2
MORE_ROWS = 3
# A posted sheet is never laid out larger than this (the counts come from the client).
MAX_COLUMNS = 40
MAX_ROWS = 80

TARGET_WORDS = {
    "ts": "too_small",
    "too small": "too_small",
    "too_small": "too_small",
    "a": "absent",
    "absent": "absent",
    "ne": "not_evaluated",
    "not evaluated": "not_evaluated",
    "not_evaluated": "not_evaluated",
}
NON_TARGET_WORDS = {
    "p": "present",
    "present": "present",
    "a": "absent",
    "absent": "absent",
    "pd": "progression",
    "progression": "progression",
    "ne": "not_evaluated",
    "not evaluated": "not_evaluated",
    "not_evaluated": "not_evaluated",
}
# Back from the contract to the sheet's notation (Sheet.from_read).
TARGET_CODES = {"too_small": "TS", "absent": "A", "not_evaluated": "NE"}
NON_TARGET_CODES = {"present": "P", "absent": "A", "progression": "PD", "not_evaluated": "NE"}

TARGET_HELP = "a size in mm, TS, A, NE, fragments (10+8) or a merge (>T01)"
NON_TARGET_HELP = "P, A, PD or NE"
NEW_HELP = "blank (not seen), N (new) or EQ (equivocal), with a node's short axis (N 12)"

_NUMBER = r"\d+(?:[.,]\d+)?"
_SIZE = re.compile(rf"^{_NUMBER}$")
_FRAGMENTS = re.compile(rf"^{_NUMBER}(?:\s*\+\s*{_NUMBER})+$")
_MERGED = re.compile(r"^(?:→|->|>)\s*(\S+)$")
_NEW = re.compile(rf"^(n|new|eq|equivocal|\?)(?:\s*({_NUMBER})\s*(?:mm)?)?$")


class SheetError(InvalidInput):
    """A worksheet entry that cannot become a read; ``field`` is the form field's name."""


def _mm(text: str) -> float:
    return float(text.replace(",", "."))


def _int(value: Any, default: int, upper: int) -> int:
    text = str(value or "").strip()
    return min(max(int(text), 1), upper) if text.isdigit() else default


@dataclass
class Column:
    """A visit: its name (the timepoint id) and scan date, as typed."""

    visit: str = ""
    date: str = ""


@dataclass
class Row:
    """A lesion, as typed: id (blank: numbered automatically), role, site, node, cells."""

    id: str = ""
    role: str = "target"
    site: str = ""
    node: bool = False
    cells: list[str] = field(default_factory=list)


@dataclass
class Sheet:
    """The worksheet as typed: columns (visits) and rows (lesions)."""

    columns: list[Column]
    rows: list[Row]

    # ------------------------------------------------------------------- laying out

    @classmethod
    def blank(cls) -> Sheet:
        """A fresh worksheet: baseline (``BL``) and spare visit columns, spare rows."""
        columns = [Column("BL")] + [Column() for _ in range(FIRST_COLUMNS - 1)]
        rows = [Row(role=role) for role, count in FIRST_ROWS for _ in range(count)]
        return cls(columns, rows).padded()

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> Sheet:
        """The worksheet as posted (field names: :meth:`cell_name` and friends)."""
        n_columns = _int(form.get("columns"), FIRST_COLUMNS, MAX_COLUMNS)
        n_rows = _int(form.get("rows"), sum(n for _, n in FIRST_ROWS), MAX_ROWS)
        columns = [
            Column(form.get(f"visit_{j}", "").strip(), form.get(f"date_{j}", "").strip())
            for j in range(n_columns)
        ]
        rows = []
        for i in range(n_rows):
            role = form.get(f"role_{i}", "target")
            rows.append(
                Row(
                    id=form.get(f"id_{i}", "").strip(),
                    role=role if role in ROLES else "target",
                    site=form.get(f"site_{i}", "").strip(),
                    node=bool(form.get(f"node_{i}")),
                    cells=[form.get(cls.cell_name(i, j), "").strip() for j in range(n_columns)],
                )
            )
        return cls(columns, rows)

    @classmethod
    def from_read(cls, read: Mapping[str, Any]) -> Sheet:
        """A read of the case contract laid out as a worksheet (a signed read, shown
        read-only; or a read pasted as JSON, to carry on in the worksheet)."""
        timepoints = list(read.get("timepoints") or [])
        columns = [Column(str(tp.get("id", "")), str(tp.get("date", ""))) for tp in timepoints]
        rows = []
        for lesion in read.get("lesions") or []:
            lid, kind = lesion["id"], lesion.get("kind")
            cells = []
            for j, tp in enumerate(timepoints):
                # A lesion missing from a follow-up counts as not evaluated (the contract).
                if kind == "target":
                    value = tp.get("targets", {}).get(lid)
                    cells.append("NE" if value is None and j else _target_code(value))
                else:
                    state = tp.get("non_targets", {}).get(lid)
                    if state is None and j:
                        state = "not_evaluated"
                    cells.append("" if state is None else NON_TARGET_CODES.get(state, state))
            rows.append(
                Row(
                    lid,
                    "target" if kind == "target" else "non-target",
                    lesion.get("site", ""),
                    bool(lesion.get("nodal")),
                    cells,
                )
            )
        news: dict[str, Row] = {}
        for j, tp in enumerate(timepoints):
            for new in tp.get("new_lesions") or []:
                row = news.setdefault(
                    new["id"],
                    Row(
                        new["id"],
                        "new",
                        new.get("site", ""),
                        bool(new.get("nodal")),
                        [""] * len(timepoints),
                    ),
                )
                code = "EQ" if new.get("equivocal") else "N"
                sa = new.get("short_axis_mm")
                row.cells[j] = code if sa is None else f"{code} {_number_text(sa)}"
        return cls(columns, rows + list(news.values()))

    def padded(self) -> Sheet:
        """Every row with one cell per column."""
        width = len(self.columns)
        rows = [replace(r, cells=(r.cells + [""] * width)[:width]) for r in self.rows]
        return Sheet(list(self.columns), rows)

    def with_more_columns(self, count: int = MORE_COLUMNS) -> Sheet:
        """The same sheet with ``count`` more blank visit columns (at most MAX_COLUMNS)."""
        extra = max(0, min(count, MAX_COLUMNS - len(self.columns)))
        return Sheet(self.columns + [Column() for _ in range(extra)], self.rows).padded()

    def with_more_rows(self, count: int = MORE_ROWS) -> Sheet:
        """The same sheet with ``count`` more blank rows (at most MAX_ROWS): new-lesion
        rows when the last row is one, else target rows."""
        role = self.rows[-1].role if self.rows else "target"
        extra = max(0, min(count, MAX_ROWS - len(self.rows)))
        return Sheet(self.columns, self.rows + [Row(role=role) for _ in range(extra)]).padded()

    def with_spare_columns(self, spare: int = MORE_COLUMNS) -> Sheet:
        """At least ``spare`` blank columns after the last visit typed (a sheet laid out
        from a read gets room for the next visits)."""
        used = [j for j in range(len(self.columns)) if self._column_used(j)]
        blank_tail = len(self.columns) - (used[-1] + 1 if used else 0)
        return self.with_more_columns(spare - blank_tail) if blank_tail < spare else self

    @staticmethod
    def cell_name(row: int, column: int) -> str:
        """The form field of one cell."""
        return f"cell_{row}_{column}"

    def auto_ids(self) -> list[str]:
        """Each row's id: the typed one, else the next free ``T01``/``NT01``/``NL01`` of
        its role (numbered over the rows in order, skipping typed ids)."""
        typed = {r.id for r in self.rows if r.id}
        counters = dict.fromkeys(ROLES, 0)
        out = []
        for row in self.rows:
            if row.id:
                out.append(row.id)
                continue
            while True:
                counters[row.role] += 1
                candidate = f"{ID_PREFIX[row.role]}{counters[row.role]:02d}"
                if candidate not in typed:
                    break
            out.append(candidate)
        return out

    # ------------------------------------------------------------------- reading

    def _column_used(self, j: int) -> bool:
        col = self.columns[j]
        return bool(col.visit or col.date) or any(
            j < len(r.cells) and r.cells[j] for r in self.rows
        )

    def _row_used(self, i: int, used_columns: list[int]) -> bool:
        row = self.rows[i]
        return bool(row.id or row.site) or any(
            j < len(row.cells) and row.cells[j] for j in used_columns
        )

    def _columns(self) -> list[int]:
        used = [j for j in range(len(self.columns)) if self._column_used(j)]
        if not used or used[0] != 0:
            raise SheetError(
                "the first column is the baseline: enter its visit name and scan date",
                field="visit_0",
            )
        seen: dict[str, int] = {}
        for j in used:
            col = self.columns[j]
            where = f"visit column {j + 1}" + (f" ({col.visit})" if col.visit else "")
            if not col.visit:
                raise SheetError(f"{where}: the visit name is missing", field=f"visit_{j}")
            if col.visit in seen:
                raise SheetError(
                    f"visit {col.visit}: the name is used by column {seen[col.visit] + 1} too; "
                    "each visit needs its own name",
                    field=f"visit_{j}",
                )
            seen[col.visit] = j
            if not col.date:
                raise SheetError(f"visit {col.visit}, scan date: missing", field=f"date_{j}")
            try:
                date.fromisoformat(col.date)
            except ValueError:
                raise SheetError(
                    f"visit {col.visit}, scan date: {col.date!r} is not a date (YYYY-MM-DD)",
                    field=f"date_{j}",
                ) from None
        return used

    def to_read(self) -> dict[str, Any]:
        """The worksheet as a read of the case contract: ``{"lesions", "timepoints"}``.

        Returns
        -------
        dict
            ``lesions`` (targets and non-targets, in row order) and ``timepoints`` (one
            per visit column used, the first being the baseline), each timepoint with its
            ``targets``, ``non_targets`` and ``new_lesions``.

        Raises
        ------
        SheetError
            An entry that is not in the notation, a missing visit name, scan date, site or
            baseline size, a repeated id, a merge into something that is not a target, or
            a new lesion at the baseline; the message names the lesion, the visit and the
            field, and ``field`` the form field.
        """
        columns = self._columns()
        ids = self.auto_ids()
        rows = [i for i in range(len(self.rows)) if self._row_used(i, columns)]
        seen: dict[str, int] = {}
        for i in rows:
            if ids[i] in seen:
                raise SheetError(
                    f"lesion {ids[i]}: the id is used by row {seen[ids[i]] + 1} too; each "
                    "lesion needs its own id",
                    field=f"id_{i}",
                )
            seen[ids[i]] = i
            site = self.rows[i].site
            if not site:
                raise SheetError(f"lesion {ids[i]}, site: choose the site", field=f"site_{i}")
            if site not in SITES:
                raise SheetError(
                    f"lesion {ids[i]}, site: {site!r} is not in the controlled list",
                    field=f"site_{i}",
                )
        targets = {ids[i] for i in rows if self.rows[i].role == "target"}
        lesions: list[dict[str, Any]] = [
            {
                "id": ids[i],
                "site": self.rows[i].site,
                "kind": self.rows[i].role,
                "nodal": self.rows[i].node,
            }
            for i in rows
            if self.rows[i].role != "new"
        ]
        timepoints = []
        for number, j in enumerate(columns):
            col = self.columns[j]
            tp: dict[str, Any] = {
                "id": col.visit,
                "date": col.date,
                "targets": {},
                "non_targets": {},
                "new_lesions": [],
            }
            for i in rows:
                row, lid = self.rows[i], ids[i]
                text = row.cells[j] if j < len(row.cells) else ""
                cell = _Cell(lid, col.visit, self.cell_name(i, j), baseline=number == 0)
                if row.role == "target":
                    tp["targets"][lid] = cell.target(text, targets)
                elif row.role == "non-target":
                    tp["non_targets"][lid] = cell.non_target(text)
                else:
                    new = cell.new(text, site=row.site, node=row.node)
                    if new is not None:
                        tp["new_lesions"].append(new)
            timepoints.append(tp)
        return {"lesions": lesions, "timepoints": timepoints}

    def field_at(self, pointer: str | None) -> str | None:
        """The form field a JSON pointer into :meth:`to_read`'s read points at (an engine
        refusal's ``/timepoints/2/targets/T01`` → that cell), ``None`` if none."""
        if not pointer:
            return None
        parts = pointer.strip("/").split("/")
        try:
            columns = self._columns()
        except SheetError:
            return None
        ids = self.auto_ids()
        if parts[0] == "timepoints" and len(parts) >= 2 and parts[1].isdigit():
            k = int(parts[1])
            if k >= len(columns):
                return None
            j = columns[k]
            if len(parts) >= 4 and parts[2] in ("targets", "non_targets"):
                lid = parts[3].replace("~1", "/").replace("~0", "~")
                if lid in ids:
                    return self.cell_name(ids.index(lid), j)
            return f"date_{j}" if len(parts) >= 3 and parts[2] == "date" else f"visit_{j}"
        return None


def _number_text(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


def _target_code(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict) and "fragments" in value:
        return "+".join(_number_text(v) for v in value["fragments"])
    if isinstance(value, dict) and "merged_into" in value:
        return f">{value['merged_into']}"
    if isinstance(value, str):
        return TARGET_CODES.get(value, value)
    return _number_text(value)


@dataclass(frozen=True)
class _Cell:
    """One cell being read: where it is, for the error messages."""

    lesion: str
    visit: str
    name: str
    baseline: bool

    def error(self, what: str, message: str) -> SheetError:
        return SheetError(
            f"lesion {self.lesion}, visit {self.visit}, {what}: {message}", field=self.name
        )

    def target(self, text: str, targets: set[str]) -> Any:
        """A target cell → a target value of the contract (R-SEL-3, R-SPLIT, R-MERGE)."""
        low = text.lower()
        if not text:
            if self.baseline:
                raise self.error(
                    "size", "missing; a target needs its baseline size in mm (R-SEL-3)"
                )
            raise self.error("size", f"missing; enter {TARGET_HELP} (NE: not evaluated)")
        if _SIZE.match(text):
            return _mm(text)
        if low in TARGET_WORDS:
            return TARGET_WORDS[low]
        if _FRAGMENTS.match(text):
            return {"fragments": [_mm(part) for part in text.split("+")]}
        merged = _MERGED.match(text)
        if merged:
            into = merged[1]
            upper = {t.upper(): t for t in targets}
            into = upper.get(into.upper(), into)
            if into == self.lesion:
                raise self.error("merged into", "a lesion cannot merge into itself (R-MERGE)")
            if into not in targets:
                raise self.error(
                    "merged into", f"{merged[1]!r} is not a target lesion of this read (R-MERGE)"
                )
            return {"merged_into": into}
        raise self.error("size", f"{text!r} is not {TARGET_HELP}")

    def non_target(self, text: str) -> str:
        """A non-target cell → ``present``/``absent``/``progression``/``not_evaluated``."""
        if not text and self.baseline:
            return "present"
        state = NON_TARGET_WORDS.get(text.lower())
        if state is None:
            found = "missing; enter" if not text else f"{text!r} is not"
            raise self.error("state", f"{found} {NON_TARGET_HELP}")
        return state

    def new(self, text: str, *, site: str, node: bool) -> dict[str, Any] | None:
        """A new-lesion cell → a new lesion of the contract, ``None`` when not seen
        (R-NEW-1, R-NEW-2)."""
        if not text:
            return None
        if self.baseline:
            raise self.error(
                "new lesion",
                "a new lesion cannot be seen at the baseline; leave the baseline cell blank",
            )
        match = _NEW.match(text.lower())
        if match is None:
            raise self.error("new lesion", f"{text!r} is not {NEW_HELP}")
        out: dict[str, Any] = {
            "id": self.lesion,
            "site": site,
            "equivocal": match[1] in ("eq", "equivocal", "?"),
        }
        if node:
            out["nodal"] = True
            if match[2] is not None:
                out["short_axis_mm"] = _mm(match[2])
        elif match[2] is not None:
            raise self.error(
                "short axis",
                "a size is kept only for a new lymph node (its short axis, R-NEW-1); tick "
                "'node' or enter N",
            )
        return out
