"""The trial's subject list flags the subjects whose stored result has a protocol's
eligibility findings (R-ELIG-COUNT, R-ELIG-SIZE, R-ELIG-VOLUME, R-ELIG-SITE): a marker with
the rule ids, a count in the page header, and a filter to those subjects only."""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.web.helpers import READER
from web.models import Subject
from web.services import create_subject, save_baseline
from web.services.trials import update_settings
from web.testing import login

PAGE = "/trials/TRIAL-1"


def _subject(session: Session, trial: str, code: str, sites: list[str], size: float) -> None:
    create_subject(session, READER, trial, code=code, arm="A")
    save_baseline(
        session,
        READER,
        trial,
        code,
        date_value="2021-01-04",
        reason="enrolled",
        lesions=[
            {"id": f"T0{i + 1}", "kind": "target", "site": site, "size": size}
            for i, site in enumerate(sites)
        ],
    )


def _row(page: str, code: str) -> str:
    match = re.search(rf"<tr>\s*<td><a href=\"[^\"]*/subjects/{code}\">.*?</tr>", page, re.S)
    assert match is not None, f"no row for {code}"
    return match.group(0)


def test_the_subject_list_flags_eligibility_breaches_from_the_stored_result(
    app: Any, session: Session, trial: str, users: dict[str, str]
) -> None:
    update_settings(
        session,
        READER,
        trial,
        {"eligibility": {"max_lesions": 2, "max_diameter_mm": 50, "excluded_sites": ["brain"]}},
        reason="protocol",
    )
    _subject(session, trial, "S-OK", ["liver"], 30.0)
    _subject(session, trial, "S-BIG", ["liver", "lung", "adrenal"], 60.0)
    _subject(session, trial, "S-ONE", ["lung"], 55.0)
    session.commit()
    client = app.test_client()
    login(client, "reviewer")
    page = client.get(PAGE).data.decode()
    header = re.search(r'<p id="eligibility-breaches".*?</p>', page, re.S)
    assert header is not None and "2 subjects with eligibility findings" in header.group(0)
    assert "flag-elig" not in _row(page, "S-OK")
    big = _row(page, "S-BIG")
    assert 'data-rules="R-ELIG-COUNT R-ELIG-SIZE"' in big
    assert "eligibility (R-ELIG-COUNT, R-ELIG-SIZE)" in big
    # The hover names each finding with its lesion and the engine's words.
    title = html.unescape(re.search(r'title="([^"]*)"', big.split("flag-elig", 1)[1]).group(1))
    assert "R-ELIG-SIZE T01: " in title and "R-ELIG-SIZE T03: " in title
    assert 'data-rules="R-ELIG-SIZE"' in _row(page, "S-ONE")
    only = client.get(f"{PAGE}?eligibility=breaches").data.decode()
    assert "/subjects/S-BIG" in only and "/subjects/S-ONE" in only
    assert "/subjects/S-OK" not in only
    assert "show all subjects" in only


def test_the_marker_reads_the_stored_result_without_recomputing(
    app: Any, session: Session, trial: str, users: dict[str, str]
) -> None:
    _subject(session, trial, "S-1", ["liver"], 30.0)
    row = session.scalar(select(Subject).where(Subject.code == "S-1"))
    # A stored finding the current settings would not give: the list shows what is stored.
    row.result_json = {
        **row.result_json,
        "warnings": [
            {"rule": "R-ELIG-SITE", "lesion": "T01", "message": "stored finding"},
            {"rule": "R-MEAS-1", "lesion": "T01", "message": "not an eligibility rule"},
        ],
    }
    session.commit()
    client = app.test_client()
    login(client, "reviewer")
    page = client.get(PAGE).data.decode()
    assert "1 subject with eligibility findings" in page
    marker = _row(page, "S-1")
    assert 'data-rules="R-ELIG-SITE"' in marker and "R-MEAS-1" not in marker
    row.result_json = {**row.result_json, "warnings": []}
    session.commit()
    page = client.get(PAGE).data.decode()
    assert 'id="eligibility-breaches"' not in page and "flag-elig" not in _row(page, "S-1")
    assert (
        "No subject has eligibility findings."
        in client.get(f"{PAGE}?eligibility=breaches").data.decode()
    )
