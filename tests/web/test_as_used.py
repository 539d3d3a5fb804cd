"""After an adjudicator's override, the grid, the subject page and the subject list show the
responses and the BOR as used (web.services.as_used), the engine's own labelled beside them
(issue 14: "After an override, the grid and the summary agree")."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session

from recist.jsonio import assess_json
from tests.web.helpers import follow_up, read_subject
from web.services import Actor
from web.services.as_used import OVERRULED, responses_as_used, used_result
from web.services.progression import override_call
from web.testing import login

ADJUDICATOR = Actor("adjudicator", "adjudicator")


def _row(page: str, label: str) -> list[str]:
    """The cell texts of the grid row headed ``label``."""
    row = page.split(f">{label}<", 1)[1].split("</tr>", 1)[0]
    cells = []
    for part in row.split("<td")[1:]:
        text = part.split(">", 1)[1].split("</td>", 1)[0]
        cells.append(text.split("<", 1)[0].strip() if "<a" not in text else text)
    return cells


def test_no_progression_overrules_the_pd_and_the_bor_follows(
    app: Flask, session: Session, trial: str, users: dict[str, str]
) -> None:
    # W8: a new liver lesion (R-NEW-1) → PD; the only follow-up, so the engine's BOR is PD.
    read_subject(
        session,
        trial,
        "S-NEW",
        follow_up("W8", "2021-03-01", 29.0, 19.0, [{"id": "NL01", "site": "liver"}]),
    )
    override_call(
        session, ADJUDICATOR, trial, "S-NEW", timepoint=None, reason="cyst", seen_call=None
    )
    client = app.test_client()
    login(client, "reviewer")
    page = client.get(f"/trials/{trial}/subjects/S-NEW").data.decode()
    # The overruled PD counts as NE for analysis; the engine's PD is kept on its own row.
    assert _row(page, "Overall response (as used)")[1] == OVERRULED
    assert _row(page, "Overall response (engine)")[1] == "PD"
    assert '<strong id="bor" class="' in page
    bor = page.split('<strong id="bor"', 1)[1].split("</strong>", 1)[0]
    assert bor.endswith(">NE")
    assert "engine's call: PD" in page.split('id="engine-bor"', 1)[1].split("</small>", 1)[0]
    listing = client.get(f"/trials/{trial}").data.decode()
    row = listing.split('subjects/S-NEW"', 1)[1].split("</tr>", 1)[0]
    assert 'NE <small class="overridden">(engine: PD)</small>' in row


def test_progression_moved_earlier_makes_that_read_pd_and_cuts_the_bor_there(
    app: Flask, session: Session, trial: str, users: dict[str, str]
) -> None:
    # W8: 21 + 14 = 35 mm against 50 mm at baseline, −30 % (PR); W16 PD by the target sum.
    read_subject(
        session,
        trial,
        "S-GROW",
        follow_up("W8", "2021-03-01", 21.0, 14.0),
        follow_up("W16", "2021-04-26", 30.0, 14.0),
    )
    override_call(
        session, ADJUDICATOR, trial, "S-GROW", timepoint="W8", reason="NT01 grew", seen_call=None
    )
    client = app.test_client()
    login(client, "reviewer")
    page = client.get(f"/trials/{trial}/subjects/S-GROW").data.decode()
    assert _row(page, "Overall response (as used)")[1:] == ["PD", "PD"]
    assert _row(page, "Overall response (engine)")[1:] == ["PR", "PD"]
    bor = page.split('<strong id="bor"', 1)[1].split("</strong>", 1)[0]
    assert bor.endswith(">PD")


def test_without_an_override_nothing_changes_and_unknown_reads_stay_as_they_are() -> None:
    case = {
        "subject_id": "S",
        "lesions": [{"id": "T1", "site": "liver", "kind": "target"}],
        "timepoints": [
            {"id": "BL", "date": "2021-01-04", "targets": {"T1": 30.0}, "non_targets": {}},
            {"id": "W8", "date": "2021-03-01", "targets": {"T1": 20.0}, "non_targets": {}},
            {"id": "W16", "date": "2021-04-26", "targets": {"T1": 19.0}, "non_targets": {}},
            {"id": "W24", "date": "2021-06-21", "targets": {"T1": 30.0}, "non_targets": {}},
        ],
    }
    result = assess_json(case)
    assert [tp["overall_response"] for tp in result["timepoints"][1:]] == ["PR", "PR", "PD"]
    assert used_result(case, result, {"source": "engine"}) is result
    # Progression moved later (W24 → none): W24 is overruled; the PRs and the BOR stay.
    moved = responses_as_used(case, result, None)
    assert [tp["overall_response"] for tp in moved["timepoints"][1:]] == ["PR", "PR", "NE"]
    assert moved["timepoints"][3]["engine_overall_response"] == "PD"
    assert "engine_overall_response" not in moved["timepoints"][1]
    assert moved["best_overall_response"] == result["best_overall_response"] == "PR"
    assert "engine_best_overall_response" not in moved
    # Progression at W16 instead: W16 becomes PD, W24 (after it) keeps the engine's PD.
    earlier = responses_as_used(case, result, "W16")
    assert [tp["overall_response"] for tp in earlier["timepoints"][1:]] == ["PR", "PD", "PD"]
    # The engine's result is never changed in place.
    assert [tp["overall_response"] for tp in result["timepoints"][1:]] == ["PR", "PR", "PD"]
