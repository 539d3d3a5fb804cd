"""The lesion × timepoint grid of the subject page, built from a case and its result.

One row per lesion, one column per timepoint (as in LesionTracker and ePAD), then the sum
of diameters, % change from baseline and from nadir, and the target, non-target,
new-lesion and overall responses with their reasons (rule ids). Cells carry the engine's
markers (``flags``): missing, too small, split, merged, new, equivocal.

Under iRECIST (``criteria: "irecist"``, docs/rules.md §10) the responses are iRECIST's
codes; a new lesion's row shows its size or state at every listing and its category (new
target or new non-target, I-NEW-1); the new-target sum, its nadir and the change from it
(I-NEW-3) follow the new lesions; the new lesions' own response (I-NEW-4) and the RECIST
1.1 overall response of the same case (``recist1_1``) are rows of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recist.irecist import recist_class
from recist.lesions import UNITS_PER_MM, Length, length_to_mm
from recist.target import pd_min_sum, pr_max_sum

# Engine marker -> (short text shown in the cell, CSS class).
MARKERS = {
    "not_evaluated": ("missing", "m-missing"),
    "too_small": ("too small", "m-small"),
    "split": ("split", "m-split"),
    "merged": ("merged", "m-merged"),
    "absent": ("absent", "m-absent"),
    "new": ("new", "m-new"),
    "equivocal": ("equivocal", "m-equivocal"),
    "progression": ("progression", "m-pd"),
}


@dataclass
class Cell:
    text: str
    css: list[str] = field(default_factory=list)
    title: str = ""
    # The key image of a target measured on a kept study (web/pages/images.py).
    href: str = ""


@dataclass
class Row:
    label: str
    detail: str
    cells: list[Cell]
    css: str = ""


@dataclass
class Grid:
    columns: list[dict[str, Any]]
    target_rows: list[Row]
    non_target_rows: list[Row]
    new_rows: list[Row]
    summary_rows: list[Row]
    response_rows: list[Row]
    reasons: list[list[str]]
    # iRECIST only: the new-target sum rows (I-NEW-3) and the line naming the criteria
    # with the iBOR, the confirmed progression and the RECIST 1.1 result beside them.
    new_summary_rows: list[Row] = field(default_factory=list)
    criteria: dict[str, Any] | None = None


def mm_text(value: float) -> str:
    """A size as entered (R-EXACT): one decimal at least, up to four, never rounded to
    0.1 mm (35.04 stays 35.04: shown as 35.0 it would be re-saved as 35.0)."""
    text = f"{value:.4f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _fmt_mm(value: Any) -> str:
    return "" if value is None else mm_text(value)


def key_image_links(subject: Any) -> dict[tuple[str, str], str]:
    """(timepoint, lesion) → key-image URL, for the targets measured on a kept study."""
    from flask import url_for

    from web.services.studies import segment_named

    links = {}
    for tp in subject.timepoints:
        evidence = tp.imaging_json or {}
        if not (evidence.get("study") or {}).get("id"):
            continue
        named = list(evidence.get("lesions") or {})
        named += [n.code for n in tp.new_lesions if segment_named(evidence, n.code)]
        for lesion in named:
            links[(tp.code, lesion)] = url_for(
                "review.key_image",
                trial_code=subject.trial.code,
                subject_code=subject.code,
                tp_code=tp.code,
                lesion=lesion,
            )
    return links


def _target_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return mm_text(value)
    if isinstance(value, dict) and "fragments" in value:
        return " + ".join(mm_text(v) for v in value["fragments"])
    if isinstance(value, dict) and "merged_into" in value:
        return f"→ {value['merged_into']}"
    return {"too_small": "5.0*", "absent": "0.0", "not_evaluated": "NE"}.get(str(value), str(value))


def _markers(flags: dict[str, list[str]], lesion_id: str) -> tuple[list[str], list[str]]:
    words, classes = [], []
    for marker in flags.get(lesion_id, []):
        text, css = MARKERS.get(marker, (marker, "m-other"))
        words.append(text)
        classes.append(css)
    return words, classes


IRECIST = "irecist"
_NEW_STATE_TEXT = {"present": "present", "absent": "absent", "progression": "progression",
                   "not_evaluated": "NE"}  # fmt: skip


def response_css(code: str | None) -> str:
    """The CSS classes of a response code: RECIST 1.1's (CR, PR, SD, PD, NE, NON-CR/NON-PD)
    and iRECIST's (iCR, iPR, iSD, NON-iCR/NON-iUPD, iUPD, iCPD)."""
    if not code:
        return ""
    # An iRECIST code is coloured as its RECIST 1.1 class (recist.irecist.RECIST_CLASS,
    # static/app.css) and carries a class of its own (r-iupd, r-icpd…); iUPD and iCPD are
    # both progression, told apart by their text and class.
    own, colour = (_css_class(c) for c in (code, recist_class(code)))
    return own if colour == own else f"{colour} {own}"


def _css_class(code: str) -> str:
    return "r-" + code.lower().replace("/", "-")


def _new_lesion_text(listing: dict[str, Any], irecist: bool) -> str:
    """A new lesion's cell: under iRECIST its size (a new target) or state (I-NEW-4)."""
    if listing.get("equivocal"):
        return "equivocal"
    if irecist:
        size = listing.get("size_mm")
        if size is None:
            size = listing.get("short_axis_mm")  # a node's size under its older name
        if size is not None:
            return _target_text(size)
        if listing.get("state"):
            return _NEW_STATE_TEXT.get(listing["state"], str(listing["state"]))
    return "yes"


def build_grid(
    case: dict[str, Any],
    result: dict[str, Any] | None,
    images: dict[tuple[str, str], str] | None = None,
    locations: dict[str, str] | None = None,
) -> Grid:
    """Lay out a case and the engine's result as the radiologists' grid; ``images`` maps
    (timepoint, lesion) to the URL of the key image a target cell links to; ``locations``
    a lesion's free-text location, shown beside its site."""
    where = locations or {}
    timepoints = case["timepoints"]
    results = {tp["id"]: tp for tp in (result or {}).get("timepoints", [])}
    columns = [
        {"id": tp["id"], "date": tp["date"], "baseline": i == 0} for i, tp in enumerate(timepoints)
    ]
    target_rows: list[Row] = []
    non_target_rows: list[Row] = []
    for lesion in case["lesions"]:
        cells = []
        for tp in timepoints:
            res = results.get(tp["id"], {})
            flags = res.get("flags", {})
            if lesion["kind"] == "target":
                value = tp["targets"].get(lesion["id"])
                text = _target_text(value) if value is not None else "NE"
                if value is None:
                    # A target missing from a follow-up counts as not evaluated.
                    flags = {**flags, lesion["id"]: flags.get(lesion["id"], ["not_evaluated"])}
            else:
                text = tp["non_targets"].get(lesion["id"], "not evaluated").replace("_", " ")
            words, classes = _markers(flags, lesion["id"])
            if lesion["kind"] == "target" and value == "too_small":
                words = words or ["too small"]
            href = (images or {}).get((tp["id"], lesion["id"]), "")
            cells.append(Cell(text, classes, ", ".join(words), href))
        detail = lesion["site"] + (" (node)" if lesion.get("nodal") else "")
        if where.get(lesion["id"]):
            detail += f" · {where[lesion['id']]}"
        row = Row(lesion["id"], detail, cells)
        (target_rows if lesion["kind"] == "target" else non_target_rows).append(row)
    new_ids: list[str] = []
    for tp in timepoints:
        for nl in tp.get("new_lesions", []):
            if nl["id"] not in new_ids:
                new_ids.append(nl["id"])
    irecist = (result or {}).get("criteria") == IRECIST
    categories = {c["id"]: c for c in (result or {}).get("new_lesion_categories", [])}
    new_rows = []
    for new_id in new_ids:
        cells = []
        site = ""
        for tp in timepoints:
            match = next((n for n in tp.get("new_lesions", []) if n["id"] == new_id), None)
            if match is None:
                cells.append(Cell(""))
                continue
            site = match.get("site") or site
            flags = results.get(tp["id"], {}).get("flags", {})
            words, classes = _markers(flags, new_id)
            href = (images or {}).get((tp["id"], new_id), "")
            cells.append(Cell(_new_lesion_text(match, irecist), classes, ", ".join(words), href))
        category = categories.get(new_id)
        if category is not None:  # I-NEW-1: fixed at its first sighting
            site = site + (" (node)" if category.get("nodal") else "")
            site = f"{site} · new {category['category']}".strip(" ·")
        if where.get(new_id):
            site += f" · {where[new_id]}"
        new_rows.append(Row(new_id, site, cells))

    def _row(label: str, key: str, fmt: Any, css: str = "") -> Row:
        cells = []
        for tp in timepoints:
            value = results.get(tp["id"], {}).get(key)
            text = fmt(value)
            cell_css = [response_css(value)] if fmt is _code and value else []
            cells.append(Cell(text, cell_css))
        return Row(label, "", cells, css)

    summary_rows = [
        _row("Sum of diameters (mm)", "sum_mm", _fmt_mm, "sum"),
        _row("Nadir before the visit (mm)", "nadir_mm", _fmt_mm),
        _row("Change from baseline", "change_from_baseline_pct", _pct),
        _row("Change from nadir", "change_from_nadir_pct", _pct),
    ]
    response_rows = [
        _row("Target response", "target_response", _code),
        _row("Non-target response", "non_target_response", _code),
        _row("New lesions", "new_lesions", lambda v: v or ""),
        _row("Overall response", "overall_response", _code, "overall"),
    ]
    if any("engine_overall_response" in res for res in results.values()):
        _add_engine_row(response_rows, timepoints, results)
    reasons = [list(results.get(tp["id"], {}).get("reasons", [])) for tp in timepoints]
    grid = Grid(
        columns, target_rows, non_target_rows, new_rows, summary_rows, response_rows, reasons
    )
    if irecist and result is not None:
        _add_irecist(grid, timepoints, results, result, _row)
    return grid


def _add_engine_row(
    rows: list[Row], timepoints: list[dict[str, Any]], results: dict[str, dict[str, Any]]
) -> None:
    """After an adjudicator's override the overall row is the response as used
    (:mod:`web.services.as_used`); the engine's own stays beside it, labelled."""
    rows[-1].label = "Overall response (as used)"
    for used, tp in zip(rows[-1].cells, timepoints, strict=True):
        engine = results.get(tp["id"], {}).get("engine_overall_response")
        if engine == "PD":
            used.title = (
                "PD overruled by the adjudicator: no response for the BOR; "
                "still an adequate assessment for PFS (§8)"
            )
        elif engine is not None:
            used.title = f"progression by the adjudicator's call (engine: {engine})"
    cells = []
    for tp in timepoints:
        res = results.get(tp["id"], {})
        code = res.get("engine_overall_response", res.get("overall_response"))
        changed = "engine_overall_response" in res
        title = "overruled by the adjudicator's call" if changed else ""
        cells.append(Cell(code or "", [response_css(code)] if code else [], title))
    rows.append(Row("Overall response (engine)", "", cells, "engine"))


def _add_irecist(
    grid: Grid,
    timepoints: list[dict[str, Any]],
    results: dict[str, dict[str, Any]],
    result: dict[str, Any],
    row: Any,
) -> None:
    """The rows and the line iRECIST adds to the grid (docs/contracts.md §1.3)."""
    if any(
        tp.get("new_target_sum_mm") is not None or tp.get("new_target_partial_sum_mm") is not None
        for tp in results.values()
    ):
        sums = []
        changes = []
        for tp in timepoints:
            res = results.get(tp["id"], {})
            total, partial = res.get("new_target_sum_mm"), res.get("new_target_partial_sum_mm")
            if total is None and partial is not None:  # a new target not evaluated (I-NEW-3)
                sums.append(Cell(f"({mm_text(partial)})", ["m-missing"], "partial sum"))
            else:
                sums.append(Cell(_fmt_mm(total)))
            changes.append(Cell(_change_text(total, res.get("new_target_nadir_mm"))))
        grid.new_summary_rows = [
            Row("New-target sum (mm)", "", sums, "sum"),
            row("New-target nadir (mm)", "new_target_nadir_mm", _fmt_mm),
            Row("New-target change from nadir", "", changes),
        ]
    grid.response_rows[-1].label = "Overall response (iRECIST)"
    grid.response_rows.insert(-1, row("New-lesion response", "new_lesion_response", _code))
    recist = result.get("recist1_1") or {}
    by_id = {tp["id"]: tp for tp in recist.get("timepoints", [])}
    cells = []
    for tp in timepoints:
        res = by_id.get(tp["id"], {})
        code = res.get("overall_response")
        title = "\n".join(res.get("reasons", []))
        cells.append(Cell(code or "", [response_css(code)] if code else [], title))
    grid.response_rows.append(Row("Overall response (RECIST 1.1)", "", cells, "recist11"))
    grid.criteria = {
        "bor": result.get("best_overall_response"),
        "progression": result.get("progression"),
        "recist_bor": recist.get("best_overall_response"),
        "recist_progression": recist.get("progression"),
    }


def _change_text(total: float | None, nadir: float | None) -> str:
    """The new-target sum against its nadir, in mm (exact, R-EXACT) and %, for display:
    I-UPD-2 needs both (≥ 20 % and ≥ 5 mm); the engine decides."""
    if total is None or nadir is None:
        return ""
    difference = total - nadir
    sign = "+" if difference >= 0 else "-"
    text = f"{sign}{mm_text(abs(difference))} mm"
    if nadir > 0:
        text += f", {100 * difference / nadir:+.1f} %"
    return text


def _pct(value: Any) -> str:
    return "" if value is None else f"{value:+.1f} %"


def _code(value: Any) -> str:
    return value or ""


def subject_summary(result: dict[str, Any] | None) -> dict[str, Any]:
    """Last response, BOR, PFS status and the progression flag of a subject list row."""
    if not result:
        return {"last": None, "bor": None, "pfs": None, "progression": None}
    last = None
    for tp in result.get("timepoints", []):
        if tp.get("overall_response"):
            last = tp["overall_response"]
    pfs = result.get("pfs") or {}
    return {
        "last": last,
        "bor": result.get("best_overall_response"),
        "pfs": pfs,
        "progression": result.get("progression"),
    }


def follow_up_reference(
    case: dict[str, Any], result: dict[str, Any] | None, tp_code: str | None
) -> dict[str, Any] | None:
    """What a reader measures a follow-up against: each target's baseline and previous
    value, the baseline sum, the nadir this visit is compared with, and the sums at which
    it becomes PR (R-TGT-PR) or PD (R-TGT-PD). For display; the engine decides on save.

    ``tp_code`` is the follow-up being edited, ``None`` for a new one (after the last).
    """
    if not result or not case["timepoints"] or not result.get("timepoints"):
        return None
    timepoints = result["timepoints"]
    position = next((i for i, tp in enumerate(timepoints) if tp["id"] == tp_code), None)
    earlier = timepoints[:position] if position is not None else timepoints
    case_earlier = case["timepoints"][: len(earlier)]
    baseline_sum = timepoints[0].get("sum_mm")
    if position is not None and timepoints[position].get("nadir_mm") is not None:
        nadir = timepoints[position]["nadir_mm"]
    else:
        sums = [tp["sum_mm"] for tp in earlier if tp.get("sum_mm") is not None]
        nadir = min(sums) if sums else None
    nadir_at = next((tp["id"] for tp in reversed(earlier) if tp.get("sum_mm") == nadir), None)
    previous = case_earlier[-1] if len(case_earlier) > 1 else None
    per_target = {}
    for le in case["lesions"]:
        if le["kind"] != "target":
            continue
        per_target[le["id"]] = {
            "baseline": _shown(case["timepoints"][0]["targets"].get(le["id"])),
            "previous": _shown(previous["targets"].get(le["id"])) if previous else None,
        }
    out: dict[str, Any] = {
        "baseline_sum": baseline_sum,
        "nadir": nadir,
        "nadir_at": nadir_at,
        "previous_id": previous["id"] if previous else None,
        "targets": per_target,
        "pr_max": None,
        "pd_min": None,
        "hold_from": None,
    }
    # R-TGT-HOLD: once PR is reached, later visits stay PR while PD is not met.
    if (result.get("settings") or {}).get("pr_hold", True):
        reached = [tp["id"] for tp in earlier[1:] if tp.get("target_response") in _RESPONDED]
        last = next(
            (tp for tp in reversed(earlier[1:]) if tp.get("target_response") not in (None, "NE")),
            None,
        )
        if reached and last is not None and last.get("target_response") in _RESPONDED:
            out["hold_from"] = reached[0]
    if baseline_sum is not None:
        out["pr_max"] = pr_limit_shown(baseline_sum)
    if nadir is not None:
        out["pd_min"] = pd_limit_shown(nadir)
    return out


# R-TGT-HOLD holds PR (iRECIST: iPR) after a target response; an iUPD ends it (I-RESET).
_RESPONDED = ("PR", "CR", "iPR", "iCR")


# The page shows the PR and PD sums to 0.1 mm ('%.1f'), while the engine compares exact
# lengths (R-EXACT, sizes finer than 0.1 mm included). Each limit is therefore rounded
# towards its own side: the PR sum down, the PD sum up, so that the sum shown is always
# PR, resp. PD, itself (never an SD sum shown as the PR limit, nor a non-PD one as the PD
# limit); the exact limit is shown when it is a multiple of 0.1 mm.
_SHOWN_STEP: Length = UNITS_PER_MM // 10


def _sum_length(sum_mm: float) -> Length:
    """A sum of diameters of an engine result (``sum_mm``, ``nadir_mm``: a length divided
    by ``UNITS_PER_MM``) back to its exact length. Not :func:`recist.lesions.mm_to_length`:
    its bound on one lesion's size (R-PLAUS-SIZE) is not a bound on a sum of several."""
    return round(sum_mm * UNITS_PER_MM)


def pr_limit_shown(baseline_sum_mm: float) -> float:
    """R-TGT-PR: the largest sum in mm, to 0.1 mm, that is PR against this baseline sum
    (:func:`recist.target.pr_max_sum`, rounded down)."""
    limit = pr_max_sum(_sum_length(baseline_sum_mm))
    return length_to_mm(limit // _SHOWN_STEP * _SHOWN_STEP)


def pd_limit_shown(nadir_mm: float) -> float:
    """R-TGT-PD: the smallest sum in mm, to 0.1 mm, that is PD against this nadir
    (:func:`recist.target.pd_min_sum`, rounded up)."""
    limit = pd_min_sum(_sum_length(nadir_mm))
    return length_to_mm(-(-limit // _SHOWN_STEP) * _SHOWN_STEP)


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return mm_text(value)
    if isinstance(value, dict) and "fragments" in value:
        return "split " + " + ".join(mm_text(v) for v in value["fragments"])
    if isinstance(value, dict) and "merged_into" in value:
        return f"merged into {value['merged_into']}"
    return str(value).replace("_", " ")
