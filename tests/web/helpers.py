"""Builders shared by the web tests: follow-up timepoints, subjects read by a reader, the
two central reads (PD / SD) of the central-review tests, and the values a browser would
submit from a form of a page (:func:`form_fields`)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from sqlalchemy.orm import Session

from tests.recist.conftest import case, fu
from web.services import (
    SYSTEM,
    Actor,
    create_subject,
    save_baseline,
    save_timepoint,
)
from web.testing import baseline_lesions

READER = Actor("reader", "reader")


def follow_up(
    code: str, day: str, t1: float, t2: float, new: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A follow-up of the standard baseline (T01, T02 targets; NT01 present)."""
    return {
        "id": code,
        "date": day,
        "targets": {"T01": t1, "T02": t2},
        "non_targets": {"NT01": "present"},
        "new_lesions": new or [],
    }


def read_subject(session: Session, trial: str, code: str, *timepoints: dict[str, Any]) -> int:
    """A subject in arm A with the standard baseline and ``timepoints``, all entered by
    ``reader``; returns the version of its last timepoint (0 without follow-ups)."""
    create_subject(session, SYSTEM, trial, code=code, arm="A")
    save_baseline(
        session,
        READER,
        trial,
        code,
        date_value="2021-01-04",
        lesions=baseline_lesions(),
    )
    version = 0
    for tp in timepoints:
        version = save_timepoint(session, READER, trial, code, tp)[1].version
    return version


def central_read(*follow_ups: dict[str, Any]) -> dict[str, Any]:
    """A blinded central read: one liver target of 30 mm at baseline, then ``follow_ups``."""
    whole = case({"T1": 30.0}, *follow_ups)
    return {"lesions": whole["lesions"], "timepoints": whole["timepoints"]}


# Read PD: 30 → 28 → 40 mm (R-TGT-PD at FU2). Read SD: 30 → 28 → 31 mm.
PD_READ = central_read(fu(targets={"T1": 28.0}), fu(targets={"T1": 40.0}))
SD_READ = central_read(fu(targets={"T1": 28.0}), fu(targets={"T1": 31.0}))


def two_reads_each(session: Session, trial: str) -> None:
    """Central review on in ``trial`` (reader2 added); S-1 read PD by reader and SD by
    reader2 (they disagree); S-2 read SD by both (concordant: read 1 accepted)."""
    from web.services import create_user
    from web.services.central import set_central_review, submit_read
    from web.testing import PASSWORD, assign_everyone

    create_user(session, SYSTEM, username="reader2", password=PASSWORD, role="reader")
    assign_everyone(session)
    set_central_review(session, Actor("trial_manager", "trial_manager"), trial, on=True)
    for code in ("S-1", "S-2"):
        create_subject(session, SYSTEM, trial, code=code, arm="A", randomized_on="2021-01-04")
    second = Actor("reader2", "reader")
    for code, first_read in (("S-1", PD_READ), ("S-2", SD_READ)):
        submit_read(session, READER, trial, code, read=first_read, password=PASSWORD)
        submit_read(session, second, trial, code, read=SD_READ, password=PASSWORD)


class _FormFields(HTMLParser):
    """The values a browser submits from the form ``form_id``: inputs (no buttons), checked
    boxes (``value`` or ``"on"``), the selected option of each select (its ``value``, else
    its text; the first option when none is selected), and each textarea's text."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.select: str | None = None
        self.textarea: str | None = None
        self.option: tuple[bool, str | None] | None = None  # (selected, value attribute)
        self.text = ""
        self.first: dict[str, str] = {}
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.values[a["name"]] = a.get("value") or "on"
            elif a.get("type") not in ("submit", "button"):
                self.values[a["name"]] = a.get("value", "")
        elif tag == "select":
            self.select = a.get("name")
        elif tag == "textarea" and a.get("name"):
            self.textarea = a["name"]
            self.values[self.textarea] = ""
        elif tag == "option" and self.select:
            self.option, self.text = ("selected" in a, a.get("value")), ""

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.values[self.textarea] += data
        if self.option is not None:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "option" and self.select and self.option is not None:
            selected, value = self.option
            value = self.text.strip() if value is None else value
            self.first.setdefault(self.select, value)
            if selected:
                self.values[self.select] = value
            self.option = None
        if tag == "textarea":
            self.textarea = None
        if tag == "form":
            self.inside = False
        if tag == "select" and self.select:
            self.values.setdefault(self.select, self.first.get(self.select, ""))
            self.select = None


def form_fields(page: str, form_id: str) -> dict[str, str]:
    """The values a browser would submit from the form ``form_id`` of ``page``."""
    parser = _FormFields(form_id)
    parser.feed(page)
    return parser.values
