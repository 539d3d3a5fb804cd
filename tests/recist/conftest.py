"""Builders for engine tests: cases written in the JSON contract, assessed for real."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from recist.jsonio import assess_json

BASE_DATE = date(2021, 1, 4)


def case(
    targets: dict[str, float | str] | None = None,
    *follow_ups: dict[str, Any],
    nodal: tuple[str, ...] = (),
    non_targets: tuple[str, ...] = (),
    settings: dict[str, Any] | None = None,
    every_days: int = 56,
    **extra: Any,
) -> dict[str, Any]:
    """A case dict: baseline target sizes, then follow-ups given as timepoint dicts.

    A follow-up dict may give ``targets``, ``non_targets``, ``new_lesions``, ``date``;
    missing non-targets are ``present``; dates default to every ``every_days`` days.
    """
    targets = targets or {}
    lesions: list[dict[str, Any]] = [
        {
            "id": lid,
            "site": "lymph node" if lid in nodal else f"organ {lid}",
            "kind": "target",
            "nodal": lid in nodal,
        }
        for lid in targets
    ]
    lesions += [{"id": lid, "site": "bone", "kind": "non-target"} for lid in non_targets]
    timepoints = [
        {
            "id": "BL",
            "date": BASE_DATE.isoformat(),
            "targets": dict(targets),
            "non_targets": {lid: "present" for lid in non_targets},
        }
    ]
    for number, fu in enumerate(follow_ups, start=1):
        tp: dict[str, Any] = {
            "id": fu.get("id", f"FU{number}"),
            "date": fu.get("date", (BASE_DATE + timedelta(days=every_days * number)).isoformat()),
            "targets": fu.get("targets", {}),
            "non_targets": {lid: "present" for lid in non_targets} | fu.get("non_targets", {}),
            "new_lesions": fu.get("new_lesions", []),
        }
        if "scan_dates" in fu:
            tp["scan_dates"] = fu["scan_dates"]
        timepoints.append(tp)
    out: dict[str, Any] = {
        "subject_id": extra.pop("subject_id", "S-001"),
        "lesions": lesions,
        "timepoints": timepoints,
    }
    if settings:
        out["settings"] = settings
    out.update(extra)
    return out


def fu(**kwargs: Any) -> dict[str, Any]:
    """A follow-up timepoint for :func:`case`."""
    return kwargs


def assess(c: dict[str, Any]) -> dict[str, Any]:
    return assess_json(c)


def last(result: dict[str, Any]) -> dict[str, Any]:
    return result["timepoints"][-1]


@pytest.fixture
def build() -> Any:
    return case
