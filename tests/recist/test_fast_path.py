"""The one-pass reader of JSON Lines (``recist.jsonio.assess_json_line``, used by
``recist assess`` on checked JSON Lines) gives byte for byte the output and the refusals
of the usual path (``safejson`` reader, then ``assess_json``): on the demo cases, on
generated cases, and on lines it must hand back (a key given twice, a colon inside a
string, ``NaN``, a settings profile, values the validation refuses)."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recist.cli_assess import assess_batch, read_cases, write_results
from recist.jsonio import assess_json_line

DEMO = Path(__file__).resolve().parents[2] / "recist" / "demo" / "demo_cases.jsonl"
TODAY = date(2026, 12, 5)


def both_paths(text: str, keep_going: bool = True) -> tuple[tuple[str, list[str]], ...]:
    """(output, refusals) of the batch path as ``recist assess`` runs it (checked JSON
    Lines take the one-pass reader), and of the usual path alone (the same cases handed
    over as a plain list, which never takes it)."""
    runs = []
    for fast in (True, False):
        form, cases = read_cases(text, "batch.jsonl")
        assert form == "lines"
        errors: list[str] = []
        rendered = assess_batch(
            cases if fast else list(cases), form, "json", keep_going, errors, TODAY
        )
        out = io.StringIO()
        if rendered:
            write_results(form, rendered, "json", out)
        runs.append((out.getvalue(), errors))
    return tuple(runs)


def taken(line: str) -> bool:
    """Whether the one-pass reader vouched for the line itself (else it handed it back)."""
    try:
        return assess_json_line(line, today=TODAY) is not None
    except Exception:  # noqa: BLE001 - a refusal is the usual path's to word
        return False


def test_the_demo_cases_come_out_the_same_and_take_the_fast_path() -> None:
    text = DEMO.read_text(encoding="utf-8")
    fast, usual = both_paths(text)
    assert fast == usual
    assert usual[0].count("\n") == len(text.splitlines()) and usual[1] == []
    # Not vacuous: the demo's RECIST 1.1 and iRECIST cases go through the one-pass reader.
    assert all(taken(line) for line in text.splitlines())


SIZES = st.one_of(
    st.floats(0, 200, allow_nan=False).map(lambda v: round(v, 2)),
    st.integers(0, 200),
    st.sampled_from(["too_small", "absent", "not_evaluated"]),
    st.builds(lambda a, b: {"fragments": [a, b]}, st.integers(1, 30), st.integers(1, 30)),
)


@st.composite
def cases(draw: Any, number: int = 0) -> dict[str, Any]:
    """A case of the contract: targets (some nodal) and non-targets, follow-ups with every
    kind of target value, non-target state and new lesion, and assorted settings."""
    start = date(2021, 1, 4) + timedelta(days=draw(st.integers(0, 600)))
    n_targets = draw(st.integers(0, 4))
    n_non = draw(st.integers(0 if n_targets else 1, 2))
    targets = [f"T{i}" for i in range(1, n_targets + 1)]
    nodal = {t for t in targets if draw(st.booleans())}
    lesions: list[dict[str, Any]] = [
        {"id": t, "site": "lymph node" if t in nodal else "liver", "kind": "target"}
        | ({"nodal": True} if t in nodal else {})
        for t in targets
    ] + [{"id": f"NT{i}", "site": "bone", "kind": "non-target"} for i in range(1, n_non + 1)]
    baseline = {t: draw(st.sampled_from([12.5, 15, 22.3, 40.0, "too_small"])) for t in targets}
    timepoints = [
        {
            "id": "BL",
            "date": start.isoformat(),
            "targets": baseline,
            "non_targets": {f"NT{i}": "present" for i in range(1, n_non + 1)},
        }
    ]
    when = start
    for k in range(1, draw(st.integers(1, 6)) + 1):
        when += timedelta(days=draw(st.sampled_from([28, 42, 56, 84])))
        tp: dict[str, Any] = {
            "id": f"W{k}",
            "date": when.isoformat(),
            "targets": {t: draw(SIZES) for t in targets if draw(st.integers(0, 9))},
            "non_targets": {
                f"NT{i}": draw(st.sampled_from(["present", "absent", "progression"]))
                for i in range(1, n_non + 1)
            },
        }
        if draw(st.integers(0, 5)) == 0:
            tp["new_lesions"] = [{"id": "N1", "site": "lung", "equivocal": draw(st.booleans())}]
        if draw(st.integers(0, 6)) == 0 and targets:
            tp["scan_dates"] = {targets[0]: (when - timedelta(days=3)).isoformat()}
        timepoints.append(tp)
    out: dict[str, Any] = {
        "subject_id": f"GEN-{number:03d}",
        "lesions": lesions,
        "timepoints": timepoints,
        "settings": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "confirmation": st.booleans(),
                    "visit_interval_days": st.sampled_from([42, 56]),
                    "pr_hold": st.booleans(),
                    "reappearance_min_mm": st.sampled_from([0.0, 5.0, 7.5]),
                    "censor_at": st.sampled_from(["adequate", "any"]),
                    "criteria": st.sampled_from(["recist1.1", "irecist"]),
                },
            )
        ),
    }
    if draw(st.booleans()):
        out["randomized_on"] = (start - timedelta(days=2)).isoformat()
    if draw(st.integers(0, 4)) == 0:
        out["died_on"] = (when + timedelta(days=draw(st.integers(0, 90)))).isoformat()
    for key, values in (("arm", ["A", "B"]), ("reader", ["R1"]), ("accepted", [True, False])):
        if draw(st.booleans()):
            out[key] = draw(st.sampled_from(values))
    return out


def _spoil(text: str, how: str) -> str:
    """One line made into one the one-pass reader must hand back (or refuse as usual)."""
    if how == "key twice":
        return text.replace('"subject_id": ', '"subject_id": "DUP", "subject_id": ', 1)
    if how == "key twice in a timepoint":
        return text.replace('"id": "BL", ', '"id": "BL", "id": "B0", ', 1)
    if how == "colon in a string":
        return text.replace('"lesions": [', '"reader": "a: b", "lesions": [', 1)
    if how == "NaN":
        return text.replace('"timepoints": [', '"died_on": NaN, "timepoints": [', 1)
    if how == "profile":
        return text.replace('"settings": {', '"settings": {"settings_profile": "admiralonco", ', 1)
    if how == "float days":
        return text.replace('"settings": {', '"settings": {"sd_min_days": 42.0, ', 1)
    if how == "unknown key":
        return text.replace('"lesions": [', '"lesion": 1, "lesions": [', 1)
    if how == "future date":
        return text.replace(
            '"timepoints": [', '"last_known_alive_on": "2030-01-01", "timepoints": [', 1
        )
    if how == "malformed":
        return text[:-3]
    return text


SPOILS = st.sampled_from(
    [
        "none",
        "key twice",
        "key twice in a timepoint",
        "colon in a string",
        "NaN",
        "profile",
        "float days",
        "unknown key",
        "future date",
        "malformed",
    ]
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(cases(), SPOILS), min_size=2, max_size=4), st.booleans())
def test_generated_batches_come_out_the_same_by_either_path(
    drawn: list[tuple[dict[str, Any], str]], keep_going: bool
) -> None:
    # The first line stays whole: it decides that the input is JSON Lines.
    lines = [
        _spoil(json.dumps({**c, "subject_id": f"GEN-{i:03d}"}), how if i else "none")
        for i, (c, how) in enumerate(drawn)
    ]
    fast, usual = both_paths("\n".join(lines) + "\n", keep_going)
    assert fast == usual
    # Not vacuous: the first line (never spoiled) takes the fast path, unless the engine
    # refuses the generated case itself (e.g. R-NEW-2: unequivocal, then equivocal again).
    assert taken(lines[0]) or any(e.startswith("batch.jsonl line 1: ") for e in usual[1])


@pytest.mark.parametrize(
    "how",
    ["key twice", "key twice in a timepoint", "colon in a string", "NaN", "profile", "malformed"],
)
def test_lines_it_cannot_vouch_for_are_handed_back(how: str) -> None:
    line = json.dumps(
        {
            "subject_id": "S-1",
            "settings": {"visit_interval_days": 56},
            "lesions": [{"id": "T1", "site": "liver", "kind": "target"}],
            "timepoints": [
                {"id": "BL", "date": "2021-01-04", "targets": {"T1": 20.0}},
                {"id": "W8", "date": "2021-03-01", "targets": {"T1": 12.0}},
            ],
        }
    )
    assert taken(line)
    assert not taken(_spoil(line, how))
    fast, usual = both_paths(line + "\n" + _spoil(line, how) + "\n")
    assert fast == usual
    if how.startswith("key twice"):
        assert "duplicate key" in usual[1][0]
