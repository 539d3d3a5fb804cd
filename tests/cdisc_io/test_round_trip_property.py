"""Property: any case survives export-sdtm → import-sdtm unchanged (hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdisc_io.cases import assess_cases
from cdisc_io.csvio import read_domain, write_csv
from cdisc_io.sdtm_export import export_sdtm
from cdisc_io.sdtm_import import TR_REQUIRED, TU_REQUIRED, build_cases

SITES = ["liver", "lung", "bone", "adrenal gland"]
sizes = st.integers(min_value=0, max_value=2000).map(lambda tenths: tenths / 10)
# A baseline volume (R-ELIG-VOLUME): none, or 0–1,000,000 mL to the microlitre.
volumes = st.one_of(st.none(), st.integers(0, 10**9).map(lambda ul: ul / 1000))


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    n_targets = draw(st.integers(1, 4))
    n_non_targets = draw(st.integers(0, 2))
    lesions: list[dict[str, Any]] = []
    for i in range(n_targets):
        nodal = draw(st.booleans())
        site = "lymph node" if nodal else draw(st.sampled_from(SITES))
        lesions.append({"id": f"T{i + 1}", "site": site, "kind": "target", "nodal": nodal})
    lesions += [{"id": f"NT{i + 1}", "site": draw(st.sampled_from(SITES)), "kind": "non-target"}
                for i in range(n_non_targets)]  # fmt: skip
    for le in lesions:
        volume = draw(volumes)
        if volume is not None:
            le["volume_ml"] = volume
    day = date(2020, 1, 6)
    timepoints: list[dict[str, Any]] = []
    new_ids: list[str] = []
    for k in range(draw(st.integers(1, 4))):
        targets: dict[str, Any] = {}
        for le in lesions[:n_targets]:
            if k == 0:
                targets[le["id"]] = draw(st.one_of(sizes, st.just("too_small")))
            else:
                targets[le["id"]] = draw(st.one_of(
                    sizes, st.sampled_from(["too_small", "not_evaluated"]),
                    st.lists(sizes, min_size=1, max_size=3).map(lambda f: {"fragments": f}),
                ))  # fmt: skip
        states = ["present"] if k == 0 else ["present", "absent", "progression", "not_evaluated"]
        non_targets = {le["id"]: draw(st.sampled_from(states)) for le in lesions[n_targets:]}
        new: list[dict[str, Any]] = []
        if k and draw(st.booleans()):
            new_ids.append(f"NEW{len(new_ids) + 1}")
            new = [{"id": new_ids[-1], "site": draw(st.sampled_from(SITES)),
                    "equivocal": draw(st.booleans())}]  # fmt: skip
        timepoints.append({"id": "BL" if k == 0 else f"V{k}", "date": day.isoformat(),
                           "targets": targets, "non_targets": non_targets,
                           "new_lesions": new})  # fmt: skip
        day += timedelta(days=draw(st.integers(1, 120)))
    return {
        "subject_id": draw(st.sampled_from(["S-1", "=SUM(A1)", "+33 1", "@x", "-12"])),
        "reader": draw(st.sampled_from(["INVESTIGATOR", "RADIOLOGIST 1"])),
        "accepted": draw(st.booleans()),
        "lesions": lesions,
        "timepoints": timepoints,
    }


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=cases())
def test_any_case_round_trips_through_sdtm(tmp_path: Path, case: dict[str, Any]) -> None:
    tu, tr, _ = export_sdtm(assess_cases([case]))
    write_csv(tu, tmp_path / "tu.csv")
    write_csv(tr, tmp_path / "tr.csv")
    (back,) = build_cases(read_domain(tmp_path / "tu.csv", TU_REQUIRED),
                          read_domain(tmp_path / "tr.csv", TR_REQUIRED)).cases  # fmt: skip
    assert back == case
