"""The site reader's worksheet: the subject's visits as lesion rows × visit columns, in the
central worksheet's notation (:class:`web.pages.read_sheet.Sheet`), with a live result.

The page lays the subject's stored case out as a worksheet plus one spare column for the
next visit, its code and expected date suggested from the protocol's schedule
(:func:`web.services.sheet.next_visit`). Signed visits are read-only columns. ``action``:

* ``save`` — saves the visits that changed through the per-visit services
  (:func:`web.services.sheet.save_sheet`): versions (409 on a stale page), locks, audit;
  never signs;
* ``check`` — the engine's result of the case the worksheet would produce, nothing stored
  (JSON for the page's script as the reader types; the page again without JavaScript);
* ``add_columns`` / ``add_rows`` — the worksheet again, larger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for

from web.auth import actor, refuse_if_blinded, requires
from web.models import SITES
from web.pages import views as bp
from web.pages.common import version_of
from web.pages.read_sheet import Column, Row, Sheet
from web.pages.sheet_check import bad_field, check_answer, rule_ids, with_pending
from web.services import ServiceError, build_case, engine_assess, get_subject, request_session

SPARE_NEW_ROWS = 2  # blank new-lesion rows under the stored lesions


@dataclass
class Slot:
    """What the page knows of a column: the stored visit it was laid out from (its code
    and version when the page was opened), whether it is signed, whether its visit and
    date are a suggestion."""

    origin: str = ""
    version: str = ""
    locked: bool = False
    suggested: bool = False


def _laid_out(subject: Any) -> tuple[Sheet, list[Slot]]:
    """The stored case as a worksheet, a spare column for the next visit and spare rows."""
    from web.clock import today
    from web.services.sheet import next_visit

    case = build_case(subject)
    if not case["timepoints"]:
        sheet = Sheet.blank()
        return sheet, [Slot() for _ in sheet.columns]
    stored = {tp.code: tp for tp in subject.timepoints}
    sheet = Sheet.from_read(case)
    slots = [
        Slot(c.visit, str(stored[c.visit].version), bool(stored[c.visit].locked))
        for c in sheet.columns
    ]
    if any(s.locked for s in slots):
        slots[0].locked = True  # the baseline's lesions reach every visit (save_baseline)
    code, day = next_visit(case, today())
    rows = sheet.rows + [Row(role="new") for _ in range(SPARE_NEW_ROWS)]
    sheet = Sheet([*sheet.columns, Column(code, day)], rows).padded()
    return sheet, [*slots, Slot(suggested=True)]


def _posted(form: Any, subject: Any) -> tuple[Sheet, list[Slot]]:
    sheet = Sheet.from_form(form).padded()
    stored = {tp.code: tp for tp in subject.timepoints}
    slots = []
    for j in range(len(sheet.columns)):
        origin = form.get(f"orig_{j}", "").strip()
        tp = stored.get(origin)
        slots.append(
            Slot(
                origin,
                form.get(f"version_{j}", ""),
                bool(tp and tp.locked),
                suggested=not origin and bool(form.get(f"suggested_{j}")),
            )
        )
    if any(s.locked for s in slots) and slots:
        slots[0].locked = True
    return sheet, slots


def _typed(sheet: Sheet, slots: list[Slot]) -> Sheet:
    """The worksheet as read for a check or a save: a column added for a visit (the
    suggested next one, say) with no cell filled is left out, visit and date
    notwithstanding, so that a reader who corrects an earlier visit saves just that."""
    columns = list(sheet.columns)
    for j, slot in enumerate(slots[: len(columns)]):
        if j and not slot.origin and not any(j < len(r.cells) and r.cells[j] for r in sheet.rows):
            columns[j] = Column()
    return Sheet(columns, sheet.rows)


def _origins(sheet: Sheet, slots: list[Slot], read: dict[str, Any]) -> list[str | None]:
    """Per visit of the read, the stored visit its column was laid out from."""
    column = {c.visit: j for j, c in enumerate(sheet.columns) if c.visit}
    return [slots[column[tp["id"]]].origin or None for tp in read["timepoints"]]


def _versions(slots: list[Slot]) -> dict[str, int]:
    out = {}
    for slot in slots:
        version = version_of(slot.version)
        if slot.origin and version is not None:
            out[slot.origin] = version
    return out


def check_sheet(subject: Any, sheet: Sheet, slots: list[Slot]) -> dict[str, Any]:
    """The engine's result for the case the worksheet would produce (nothing stored)."""
    from web.services.sheet import sheet_case

    read = sheet.to_read()
    return engine_assess(sheet_case(subject, read, _origins(sheet, slots, read)))


@bp.route("/trials/<trial_code>/subjects/<subject_code>/sheet", methods=["GET", "POST"])
@requires("enter_measurements")
def site_sheet(trial_code: str, subject_code: str) -> Any:
    from web.services.sheet import save_sheet

    session = request_session()
    subject = get_subject(session, trial_code, subject_code)
    refuse_if_blinded(subject.trial)
    form = request.form
    action = form.get("action", "save")
    error: ServiceError | None = None
    outcome = None
    pending: list[str] = []
    if request.method == "GET":
        sheet, slots = _laid_out(subject)
    else:
        sheet, slots = _posted(form, subject)
        try:
            if action == "add_columns":
                sheet = sheet.with_more_columns()
            elif action == "add_rows":
                sheet = sheet.with_more_rows()
            elif action == "check":
                shown, pending = with_pending(_typed(sheet, slots))
                outcome = check_sheet(subject, shown, slots)
            else:
                read = _typed(sheet, slots).to_read()
                saved = save_sheet(
                    session,
                    actor(),
                    trial_code,
                    subject_code,
                    read,
                    origins=_origins(sheet, slots, read),
                    versions=_versions(slots),
                    reason=form.get("reason") or None,
                )
                flash(
                    f"Saved {', '.join(saved)}; the assessment was recomputed (not signed)."
                    if saved
                    else "Nothing changed: nothing saved."
                )
                return redirect(
                    url_for("views.subject", trial_code=trial_code, subject_code=subject_code)
                )
        except ServiceError as failed:
            error = failed
        if action == "check" and request.accept_mimetypes.best == "application/json":
            return jsonify(check_answer(sheet, outcome, error, pending))
        slots += [Slot() for _ in range(len(sheet.columns) - len(slots))]
    if outcome is not None:
        outcome = check_answer(sheet, outcome, None, pending)["outcome"]
    return (
        render_template(
            "views/site_sheet.html",
            trial=subject.trial,
            subject=subject,
            sheet=sheet,
            slots=slots,
            ids=sheet.auto_ids(),
            stored={le.code for le in subject.lesions},
            error=error,
            bad_field=bad_field(sheet, error),
            outcome=outcome,
            pending=pending,
            sites=SITES,
            rule_ids=rule_ids,
        ),
        error.status if error is not None else 200,
    )
