"""Invariant: whatever sequence of saves is accepted or refused, the stored result is the
engine's assessment of the stored rows (results are never edited, only recomputed)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from recist.jsonio import assess_json
from web.services import (
    SYSTEM,
    ServiceError,
    build_case,
    create_subject,
    get_subject,
    save_baseline,
    save_timepoint,
)
from web.testing import baseline_lesions

_SUBJECT_NUMBERS = itertools.count(1)

target_value = st.one_of(
    st.floats(min_value=0, max_value=80, allow_nan=False).map(lambda v: round(v, 1)),
    st.sampled_from(["too_small", "absent", "not_evaluated"]),
    st.lists(
        st.floats(min_value=0, max_value=40).map(lambda v: round(v, 1)), min_size=1, max_size=2
    ).map(lambda parts: {"fragments": parts}),
    st.just({"merged_into": "T01"}),
    st.just(-1.0),  # refused: negative size
)
save = st.fixed_dictionaries(
    {
        "visit": st.sampled_from(["W8", "W16", "W24"]),
        "day": st.integers(min_value=-20, max_value=200),  # before the baseline is refused
        "t1": target_value,
        "t2": target_value,
        "nt": st.sampled_from(["present", "absent", "progression", "not_evaluated"]),
        "new": st.sampled_from(
            [
                [],
                [{"id": "NL01", "site": "liver", "equivocal": True}],
                [{"id": "NL01", "site": "liver"}],
            ]
        ),
    }
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(saves=st.lists(save, min_size=1, max_size=5))
def test_stored_result_always_equals_the_engine_on_the_stored_rows(
    session: Session, trial: str, saves: list[dict[str, Any]]
) -> None:
    from datetime import date, timedelta

    code = f"P-{next(_SUBJECT_NUMBERS)}"  # one subject per example (fixtures are shared)
    create_subject(session, SYSTEM, trial, code=code)
    save_baseline(
        session,
        SYSTEM,
        trial,
        code,
        date_value="2021-01-04",
        lesions=baseline_lesions(),
    )
    for item in saves:
        subject = get_subject(session, trial, code)
        versions = {tp.code: tp.version for tp in subject.timepoints}
        day = (date(2021, 1, 4) + timedelta(days=item["day"])).isoformat()
        data = {
            "id": item["visit"],
            "date": day,
            "targets": {"T01": item["t1"], "T02": item["t2"]},
            "non_targets": {"NT01": item["nt"]},
            "new_lesions": item["new"],
        }
        try:
            save_timepoint(
                session,
                SYSTEM,
                trial,
                code,
                data,
                expected_version=versions.get(item["visit"]),
                original_code=item["visit"] if item["visit"] in versions else None,
            )
        except ServiceError as error:
            assert error.message  # refused with a message; nothing is half-written
        session.expire_all()
        stored = get_subject(session, trial, code)
        assert stored.result_json == assess_json(build_case(stored))
