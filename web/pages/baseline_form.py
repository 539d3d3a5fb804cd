"""The baseline form's fields ↔ baseline lesions (the case contract's
``BaselineLesionIn`` plus the web's annotations), and a stored baseline back into form
values, so that a form re-rendered after an error shows exactly what the user typed."""

from __future__ import annotations

import math
from typing import Any

from werkzeug.datastructures import MultiDict

from web.pages.forms import note_values, number_mm
from web.services import InvalidInput
from web.services.annotations import ANNOTATION_KEYS
from web.services.common import echo

BASELINE_BLANK_ROWS = 3  # spare rows under the lesions of a stored baseline
NEW_BASELINE_ROWS = 8  # up to 5 targets (R-SEL-1) and a few non-targets


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
                "location": form.get(f"location_{i}", ""),
                "series": form.get(f"series_{i}", "").strip(),
                "image": form.get(f"image_{i}", "").strip(),
                "row": i,
            }
        )
    return rows


def baseline_form_rows(form: MultiDict[str, str]) -> list[int]:
    """The form row of each lesion :func:`lesions_from_form` returns, in its order (an
    error naming ``/lesions/2`` names the third lesion typed, not the third row)."""
    return [r["row"] for r in baseline_rows(form) if _filled(r)]


def _filled(r: dict[str, Any]) -> bool:
    """A row that holds anything is a lesion (never silently dropped)."""
    return bool(
        r["code"]
        or r["size"]
        or r["site"]
        or r["volume"]
        or r["location"].strip()
        or r["series"]
        or r["image"]
    )


def ml_text(value: float | None) -> str:
    """A stored volume as the form shows it (612.5, 1000000; no exponent)."""
    return "" if value is None else f"{value:.6f}".rstrip("0").rstrip(".")


def _volume(text: str, code: str, where: str, field: str) -> float:
    """A typed baseline volume in mL: a finite number above 0, at most 1,000,000 (the
    engine's largest, R-PLAUS-SIZE), for a protocol's volume limit (R-ELIG-VOLUME)."""
    from recist.settings import MAX_VOLUME_ML

    try:
        value = float(text.replace(",", "."))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_VOLUME_ML:
        raise InvalidInput(
            f"{where}, lesion {code} volume (mL): {echo(text)} is not a lesion volume; type a "
            f"number of millilitres above 0 and at most {MAX_VOLUME_ML:,} (R-PLAUS-SIZE)",
            field=field,
            rule="R-PLAUS-SIZE",
        )
    return value


def lesions_from_form(
    form: MultiDict[str, str], subject_code: str | None = None
) -> list[dict[str, Any]]:
    """Baseline lesions from the form; empty rows are skipped, blank ids numbered.

    Ids follow the trial convention: T01… for targets, NT01… for non-targets.
    """
    rows = [r for r in baseline_rows(form) if _filled(r)]
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
                else (
                    number_mm(
                        r["size"],
                        f"subject {subject_code or 'new'}, baseline, lesion {code} size",
                        f"size_{r['row']}",
                    )
                )
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
            where = f"subject {subject_code or 'new'}, baseline"
            lesion["volume_ml"] = _volume(r["volume"], code, where, f"volume_{r['row']}")
        for key in ANNOTATION_KEYS:
            if r[key].strip():
                lesion[key] = r[key]  # web-side annotations, split off before the contract
        out.append(lesion)
    return out


def baseline_form_values(
    case: dict[str, Any] | None, notes: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Form values of a stored baseline (or an empty form); ``notes`` are the lesions'
    annotations by id (location, series, image)."""
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
                **note_values((notes or {}).get(le["id"], {})),
            }
        )
    return {"date": bl["date"], "code": bl["id"], "rows": rows + _blank(BASELINE_BLANK_ROWS)}


def _blank(n: int) -> list[dict[str, Any]]:
    return [
        {
            "code": "",
            "kind": "target",
            "site": "",
            "nodal": False,
            "size": "",
            "treated_on": "",
            "volume": "",
            **note_values({}),
        }
        for _ in range(n)
    ]
