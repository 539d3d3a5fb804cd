"""HTML form fields ↔ service-layer input (the case contract).

Forms post flat fields (``size_0``, ``t_T01_state``…); these helpers turn them into the
structures :mod:`web.services` takes, and stored rows back into form values, so that a
form re-rendered after an error shows exactly what the user typed.
"""

from __future__ import annotations

import math
from typing import Any

from werkzeug.datastructures import MultiDict

from web.models import NEW_SIZE_STATES, NON_TARGET_STATES
from web.pages.grid import mm_text
from web.services import InvalidInput

BASELINE_BLANK_ROWS = 3  # spare rows under the lesions of a stored baseline
NEW_BASELINE_ROWS = 8  # up to 5 targets (R-SEL-1) and a few non-targets
NEW_LESION_ROWS = 3
MAX_CARRIED = 40  # new lesions a follow-up form lists (rows carried forward, I-NEW-4)
# The state select of an iRECIST new lesion: a size word or a new non-target's state.
NEW_FORM_STATES = ("present", "progression", "too_small", "absent", "not_evaluated")


def _number(text: str, where: str) -> float:
    try:
        return float(text.replace(",", "."))
    except ValueError:
        raise InvalidInput(f"{where}: {text!r} is not a number of mm", field=where) from None


def baseline_rows(form: MultiDict[str, str]) -> list[dict[str, Any]]:
    """The lesion rows of the baseline form as typed (for re-rendering)."""
    raw = form.get("rows", "0")
    count = int(raw) if raw.isdigit() else 0
    rows = []
    for i in range(min(count, 50)):
        rows.append(
            {
                "code": form.get(f"code_{i}", "").strip(),
                "kind": form.get(f"kind_{i}", "target"),
                "site": form.get(f"site_{i}", ""),
                "nodal": form.get(f"nodal_{i}") == "on",
                "size": form.get(f"size_{i}", "").strip(),
                "treated_on": form.get(f"treated_on_{i}", "").strip(),
                "volume": form.get(f"volume_{i}", "").strip(),
            }
        )
    return rows


def ml_text(value: float | None) -> str:
    """A stored volume as the form shows it (612.5, 1000000; no exponent)."""
    return "" if value is None else f"{value:.6f}".rstrip("0").rstrip(".")


def _volume(text: str, code: str) -> float:
    """A typed baseline volume in mL: a finite number above 0, at most 1,000,000 (the
    engine's largest, R-PLAUS-SIZE), for a protocol's volume limit (R-ELIG-VOLUME)."""
    from recist.settings import MAX_VOLUME_ML

    try:
        value = float(text.replace(",", "."))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_VOLUME_ML:
        raise InvalidInput(
            f"lesion {code} volume (mL): {text!r} is not a lesion volume; type a number of "
            f"millilitres above 0 and at most {MAX_VOLUME_ML:,} (R-PLAUS-SIZE)",
            field="volume_ml",
            rule="R-PLAUS-SIZE",
        )
    return value


def lesions_from_form(form: MultiDict[str, str]) -> list[dict[str, Any]]:
    """Baseline lesions from the form; empty rows are skipped, blank ids numbered.

    Ids follow the trial convention: T01… for targets, NT01… for non-targets.
    """
    rows = [r for r in baseline_rows(form) if r["code"] or r["size"] or r["site"] or r["volume"]]
    used = {r["code"] for r in rows if r["code"]}
    counters = {"target": 0, "non-target": 0}
    out = []
    for r in rows:
        code = r["code"]
        if not code:
            prefix = "T" if r["kind"] == "target" else "NT"
            while True:
                counters[r["kind"]] = counters.get(r["kind"], 0) + 1
                code = f"{prefix}{counters[r['kind']]:02d}"
                if code not in used:
                    used.add(code)
                    break
        size: Any = None
        if r["size"]:
            size = (
                "too_small"
                if r["size"].lower() in ("ts", "too_small", "too small")
                else (_number(r["size"], f"lesion {code} size"))
            )
        lesion: dict[str, Any] = {
            "id": code,
            "kind": r["kind"],
            "site": r["site"],
            "nodal": r["nodal"],
        }
        if size is not None:
            lesion["size"] = size  # on a non-target the contract refuses it (R-SEL-3)
        if r["treated_on"]:
            lesion["treated_on"] = r["treated_on"]
        if r["volume"]:  # typed; a volume imaging gave is not posted (it wins)
            lesion["volume_ml"] = _volume(r["volume"], code)
        out.append(lesion)
    return out


def baseline_form_values(case: dict[str, Any] | None) -> dict[str, Any]:
    """Form values of a stored baseline (or an empty form)."""
    if case is None or not case["timepoints"]:
        rows: list[dict[str, Any]] = []
        return {"date": "", "code": "BL", "rows": rows + _blank(NEW_BASELINE_ROWS)}
    bl = case["timepoints"][0]
    rows = []
    for le in case["lesions"]:
        size = bl["targets"].get(le["id"]) if le["kind"] == "target" else None
        rows.append(
            {
                "code": le["id"],
                "kind": le["kind"],
                "site": le["site"],
                "nodal": le.get("nodal", False),
                "size": "" if size is None else str(size),
                "treated_on": le.get("treated_on", "") or "",
                "volume": ml_text(le.get("volume_ml")),
            }
        )
    return {"date": bl["date"], "code": bl["id"], "rows": rows + _blank(BASELINE_BLANK_ROWS)}


def _blank(n: int) -> list[dict[str, Any]]:
    return [
        {"code": "", "kind": "target", "site": "", "nodal": False, "size": "", "treated_on": "",
         "volume": ""}
        for _ in range(n)
    ]


def _target_from_form(form: MultiDict[str, str], code: str) -> Any:
    """One target's value from its row: the state, and the one field that goes with it.

    Where the state was left at "measured" but only the fragments or the merge target was
    filled in, that is what the reader meant. A row that says two things (a size and
    "absent", a size and fragments) is refused: keeping either half would silently drop
    what the reader typed in the other.
    """
    state = form.get(f"t_{code}_state", "measured")
    text = form.get(f"t_{code}_mm", "").strip()
    fragments = [
        p.strip(",")
        for p in form.get(f"t_{code}_fragments", "").replace(";", " ").split()
        if p.strip(",")
    ]
    merged = form.get(f"t_{code}_merged", "").strip()
    if state == "measured" and not text:
        state = "fragments" if fragments and not merged else "merged" if merged else state
    filled = [
        name
        for name, present, owner in (
            (f"a size ({text} mm)", bool(text), "measured"),
            ("fragment sizes", bool(fragments), "fragments"),
            (f"'merged into {merged}'", bool(merged), "merged"),
        )
        if present and owner != state
    ]
    if filled:
        raise InvalidInput(
            f"target {code}: the state is {state.replace('_', ' ')!r} but {filled[0]} was also "
            "entered; clear it or choose the state that goes with it",
            field=f"targets.{code}",
        )
    if state == "measured":
        if not text:
            raise InvalidInput(
                f"target {code}: enter a size in mm or choose another state "
                "(too small, absent, not evaluated, split, merged)",
                field=f"targets.{code}",
            )
        return _number(text, f"target {code}")
    if state == "fragments":
        if not fragments:
            raise InvalidInput(
                f"target {code}: a split lesion needs its fragments' sizes, e.g. "
                "'12.0 8.5' (R-SPLIT)",
                field=f"targets.{code}",
            )
        return {"fragments": [_number(p, f"target {code} fragment") for p in fragments]}
    if state == "merged":
        if not merged:
            raise InvalidInput(
                f"target {code}: choose the target it merged into (R-MERGE)",
                field=f"targets.{code}",
            )
        return {"merged_into": merged}
    return state


def timepoint_from_form(form: MultiDict[str, str], case: dict[str, Any]) -> dict[str, Any]:
    """A follow-up timepoint (case contract) from the follow-up form."""
    targets: dict[str, Any] = {}
    non_targets: dict[str, Any] = {}
    for le in case["lesions"]:
        code = le["id"]
        if le["kind"] == "target":
            targets[code] = _target_from_form(form, code)
        else:
            non_targets[code] = form.get(f"nt_{code}", "present")
    scan_dates: dict[str, str] = {}
    for le in case["lesions"]:
        seen_on = form.get(f"scan_{le['id']}", "").strip()
        if seen_on:
            scan_dates[le["id"]] = seen_on
    new_lesions = []
    taken = {le["id"] for le in case["lesions"]}
    taken |= {n["id"] for tp in case["timepoints"] for n in tp.get("new_lesions", [])}
    taken |= {form.get(f"new_{i}_id", "").strip() for i in range(NEW_LESION_ROWS + MAX_CARRIED)}
    irecist = is_irecist(case)
    for i in range(NEW_LESION_ROWS + MAX_CARRIED):
        new_id = form.get(f"new_{i}_id", "").strip()
        filled = any(
            form.get(f"new_{i}_{name}", "").strip()
            for name in ("site", "sa", "scan", "state", "category")
        ) or any(form.get(f"new_{i}_{name}") == "on" for name in ("equivocal", "nodal"))
        if not new_id and not filled:
            continue
        if not new_id:
            # A row filled in without an id is a new lesion all the same: never drop it. It
            # gets the next id no lesion of this subject has used, so that it never
            # confirms an earlier equivocal lesion by accident (R-NEW-2 needs the same id).
            number = 1
            while f"NL{number:02d}" in taken:
                number += 1
            new_id = f"NL{number:02d}"
            taken.add(new_id)
        site = form.get(f"new_{i}_site", "").strip()
        if not site:
            raise InvalidInput(
                f"new lesion {new_id}: choose its site",
                field=f"new_lesions.{new_id}.site",
            )
        item: dict[str, Any] = {
            "id": new_id,
            "site": site,
            "equivocal": form.get(f"new_{i}_equivocal") == "on",
        }
        short_axis = form.get(f"new_{i}_sa", "").strip()
        nodal = form.get(f"new_{i}_nodal") == "on"
        if nodal:
            item["nodal"] = True  # the engine asks for its short axis (R-NEW-1)
        if short_axis and irecist and not nodal:
            item["size_mm"] = _number(short_axis, f"new lesion {new_id} size")  # I-NEW-4
        elif short_axis:
            item["short_axis_mm"] = _number(short_axis, f"new lesion {new_id} short axis")
        if irecist:
            where = (
                f"subject {case['subject_id']}, timepoint {form.get('code', '').strip() or 'new'}, "
                f"lesion {new_id}"
            )
            item.update(_irecist_fields(form, i, where, bool(short_axis)))
        seen_on = form.get(f"new_{i}_scan", "").strip()
        if seen_on:
            scan_dates[new_id] = seen_on
        new_lesions.append(item)
    out: dict[str, Any] = {
        "id": form.get("code", "").strip(),
        "date": form.get("date", "").strip(),
        "targets": targets,
        "non_targets": non_targets,
        "new_lesions": new_lesions,
    }
    if scan_dates:
        out["scan_dates"] = scan_dates
    return out


def is_irecist(case: dict[str, Any]) -> bool:
    """Whether the case is assessed with iRECIST (its trial's setting ``criteria``)."""
    return (case.get("settings") or {}).get("criteria") == "irecist"


def _irecist_fields(form: MultiDict[str, str], i: int, where: str, sized: bool) -> dict[str, Any]:
    """A new lesion's iRECIST fields from its row (I-NEW-1, I-NEW-4): the category, and the
    state, which is a size word (``too_small``) or a state (present, absent, progression,
    not evaluated). A state beside a typed size says two things and is refused."""
    out: dict[str, Any] = {}
    category = form.get(f"new_{i}_category", "").strip()
    if category:
        out["category"] = category
    state = form.get(f"new_{i}_state", "").strip()
    if state and sized:
        raise InvalidInput(
            f"{where}, field state: a size was entered and the state is "
            f"{state.replace('_', ' ')!r}; give one of them (I-NEW-4)",
            field=f"new_lesions.{where.rpartition(' ')[2]}",
            rule="I-NEW-4",
        )
    if state in NEW_SIZE_STATES and state not in NON_TARGET_STATES:
        out["size_mm"] = state
    elif state:
        out["state"] = state
    return out


def _blank_new() -> dict[str, Any]:
    return {
        "id": "",
        "site": "",
        "equivocal": False,
        "nodal": False,
        "sa": "",
        "scan": "",
        "carried": "",
        "state": "",
        "category": "",
    }


def timepoint_form_values(tp: dict[str, Any] | None, case: dict[str, Any]) -> dict[str, Any]:
    """Form values for a stored follow-up (or a new one: every target measured)."""
    values: dict[str, Any] = {"code": "", "date": "", "targets": {}, "non_targets": {}, "new": []}
    if tp is not None:
        values["code"] = tp["id"]
        values["date"] = tp["date"]
    for le in case["lesions"]:
        code = le["id"]
        if le["kind"] == "target":
            raw = tp["targets"].get(code, "not_evaluated") if tp is not None else None
            entry = {"state": "measured", "mm": "", "fragments": "", "merged": ""}
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                entry["mm"] = mm_text(raw)
            elif isinstance(raw, dict) and "fragments" in raw:
                entry["state"] = "fragments"
                entry["fragments"] = " ".join(mm_text(v) for v in raw["fragments"])
            elif isinstance(raw, dict) and "merged_into" in raw:
                entry["state"] = "merged"
                entry["merged"] = raw["merged_into"]
            elif isinstance(raw, str):
                entry["state"] = raw
            values["targets"][code] = entry
        else:
            values["non_targets"][code] = (
                tp["non_targets"].get(code, "not_evaluated") if tp is not None else "present"
            )
    scans = dict(tp.get("scan_dates", {})) if tp is not None else {}
    values["scan"] = {le["id"]: scans.get(le["id"], "") for le in case["lesions"]}
    new = []
    for item in tp.get("new_lesions", []) if tp is not None else []:
        size = item.get("short_axis_mm", item.get("size_mm"))
        new.append(
            {
                **_blank_new(),
                "id": item["id"],
                "site": item.get("site", ""),
                "equivocal": item.get("equivocal", False),
                "nodal": item.get("nodal", False),
                "sa": mm_text(size) if isinstance(size, int | float) else "",
                "scan": scans.get(item["id"], ""),
                "state": item.get("state") or (size if isinstance(size, str) else ""),
                "category": item.get("category", ""),
            }
        )
    if tp is None:
        # A new visit carries forward what is still open: an equivocal new lesion never
        # seen unequivocal, ready to be confirmed (R-NEW-2 back-dates the progression to
        # its first sighting) or removed as resolved. The same id is what back-dates it.
        # Under iRECIST every new lesion is followed at every later visit (I-NEW-4).
        carried = carried_new_lesions(case) if is_irecist(case) else open_equivocal(case)
        new = [{**_blank_new(), **item} for item in carried]
    values["new"] = new + [_blank_new() for _ in range(NEW_LESION_ROWS)]
    return values


def open_equivocal(case: dict[str, Any]) -> list[dict[str, Any]]:
    """Equivocal new lesions of the case not yet seen unequivocal, as form rows (marked
    ``carried`` with the visit that last showed them), in the order first seen."""
    state: dict[str, dict[str, Any]] = {}
    for tp in case["timepoints"][1:]:
        for item in tp.get("new_lesions", []):
            if item.get("equivocal"):
                sa = item.get("short_axis_mm")
                state[item["id"]] = {
                    "id": item["id"],
                    "site": item.get("site", ""),
                    "equivocal": True,
                    "nodal": item.get("nodal", False),
                    "sa": "" if sa is None else mm_text(sa),
                    "carried": tp["id"],
                    "confirmed": state.get(item["id"], {}).get("confirmed", False),
                }
            else:
                state.setdefault(item["id"], {})["confirmed"] = True
    return [
        {k: v for k, v in row.items() if k != "confirmed"}
        for row in state.values()
        if row.get("carried") and not row.get("confirmed")
    ]


def carried_new_lesions(case: dict[str, Any]) -> list[dict[str, Any]]:
    """iRECIST (I-NEW-4): every new lesion listed at an earlier visit, as a form row with
    its first listing's site and node flag and no size yet (``carried``: the visit that
    last listed it), in the order first seen; an equivocal one still open stays
    equivocal until the reader confirms it (R-NEW-2)."""
    rows: dict[str, dict[str, Any]] = {}
    for tp in case["timepoints"][1:]:
        for item in tp.get("new_lesions", []):
            row = rows.setdefault(
                item["id"],
                {"id": item["id"], "site": item.get("site", ""), "equivocal": True,
                 "nodal": item.get("nodal", False)},
            )  # fmt: skip
            row["equivocal"] = row["equivocal"] and bool(item.get("equivocal"))
            row["carried"] = tp["id"]
            row["last"] = _listing_text(item)
    return list(rows.values())[:MAX_CARRIED]


def _listing_text(item: dict[str, Any]) -> str:
    """What a new lesion's listing recorded, for the note of its carried row: its size, a
    size word or a state (``""`` when it gives none)."""
    size = item.get("short_axis_mm", item.get("size_mm"))
    if isinstance(size, int | float):
        return f"{mm_text(size)} mm"
    word = size if isinstance(size, str) else item.get("state") or ""
    return str(word).replace("_", " ")


def timepoint_values_from_post(form: MultiDict[str, str], case: dict[str, Any]) -> dict[str, Any]:
    """The follow-up form as typed, for re-rendering after an error."""
    values: dict[str, Any] = {
        "code": form.get("code", ""),
        "date": form.get("date", ""),
        "targets": {},
        "non_targets": {},
        "new": [],
    }
    for le in case["lesions"]:
        code = le["id"]
        if le["kind"] == "target":
            values["targets"][code] = {
                "state": form.get(f"t_{code}_state", "measured"),
                "mm": form.get(f"t_{code}_mm", ""),
                "fragments": form.get(f"t_{code}_fragments", ""),
                "merged": form.get(f"t_{code}_merged", ""),
            }
        else:
            values["non_targets"][code] = form.get(f"nt_{code}", "present")
    values["scan"] = {le["id"]: form.get(f"scan_{le['id']}", "") for le in case["lesions"]}
    for i in range(NEW_LESION_ROWS + MAX_CARRIED):
        if f"new_{i}_id" in form:
            values["new"].append(
                {
                    "id": form.get(f"new_{i}_id", ""),
                    "site": form.get(f"new_{i}_site", ""),
                    "equivocal": form.get(f"new_{i}_equivocal") == "on",
                    "nodal": form.get(f"new_{i}_nodal") == "on",
                    "sa": form.get(f"new_{i}_sa", ""),
                    "scan": form.get(f"new_{i}_scan", ""),
                    "state": form.get(f"new_{i}_state", ""),
                    "category": form.get(f"new_{i}_category", ""),
                    "carried": form.get(f"new_{i}_carried", ""),
                }
            )
    if is_irecist(case):
        last = {row["id"]: row["last"] for row in carried_new_lesions(case)}
        for row in values["new"]:
            row["last"] = last.get(row["id"], "") if row["carried"] else ""
    return values
