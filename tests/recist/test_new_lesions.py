"""New lesions (§4.3.5, §4.4.4): R-NEW-1 and R-NEW-2."""

from __future__ import annotations

from tests.recist.conftest import assess, case, fu, last


def test_unequivocal_new_lesion_is_pd():
    result = assess(case({"T1": 30.0}, fu(targets={"T1": 10.0}, new_lesions=[{"id": "N1"}])))
    tp = last(result)
    assert (tp["new_lesions"], tp["overall_response"]) == ("yes", "PD")
    assert result["progression"]["reason"] == "PD_NEW_LESION"


def test_new_node_below_10mm_does_not_count():
    new = [{"id": "N1", "site": "lymph node", "nodal": True, "short_axis_mm": 9.9}]
    result = assess(case({"T1": 30.0}, fu(targets={"T1": 30.0}, new_lesions=new)))
    assert last(result)["overall_response"] == "SD"
    assert any("R-NEW-1" in r and "< 10 mm" in r for r in last(result)["reasons"])


def test_new_node_at_10mm_counts():
    new = [{"id": "N1", "site": "lymph node", "nodal": True, "short_axis_mm": 10.0}]
    result = assess(case({"T1": 30.0}, fu(targets={"T1": 30.0}, new_lesions=new)))
    assert last(result)["overall_response"] == "PD"


def test_equivocal_new_lesion_is_not_pd_at_that_timepoint():
    result = assess(
        case({"T1": 30.0}, fu(targets={"T1": 20.0}, new_lesions=[{"id": "N1", "equivocal": True}]))
    )
    tp = last(result)
    assert (tp["new_lesions"], tp["overall_response"]) == ("equivocal", "PR")
    assert result["progression"] is None


def test_confirmed_equivocal_lesion_back_dates_progression_to_its_first_sighting():
    result = assess(
        case(
            {"T1": 30.0},
            fu(
                id="W8",
                date="2021-03-01",
                targets={"T1": 20.0},
                new_lesions=[{"id": "N1", "site": "liver", "equivocal": True}],
            ),
            fu(
                id="W16",
                date="2021-04-26",
                targets={"T1": 20.0},
                new_lesions=[{"id": "N1", "site": "liver", "equivocal": False}],
            ),
            randomized_on="2021-01-01",
        )
    )
    assert result["progression"] == {
        "timepoint": "W16",
        "date": "2021-03-01",
        "reason": "PD_NEW_LESION",
        "back_dated": True,
    }
    assert result["pfs"]["date"] == "2021-03-01"
    assert result["pfs"]["days"] == 60  # 2021-03-01 − 2021-01-01 + 1
    assert [tp["overall_response"] for tp in result["timepoints"][1:]] == ["PR", "PD"]


def test_equivocal_lesion_back_dating_uses_its_own_scan_date():
    result = assess(
        case(
            {"T1": 30.0},
            fu(
                id="W8",
                date="2021-03-01",
                targets={"T1": 20.0},
                new_lesions=[{"id": "N1", "equivocal": True}],
                scan_dates={"N1": "2021-02-25"},
            ),
            fu(id="W16", date="2021-04-26", targets={"T1": 20.0}, new_lesions=[{"id": "N1"}]),
        )
    )
    assert result["progression"]["date"] == "2021-02-25"


def test_a_different_new_lesion_is_not_back_dated():
    result = assess(
        case(
            {"T1": 30.0},
            fu(
                id="W8",
                date="2021-03-01",
                targets={"T1": 20.0},
                new_lesions=[{"id": "N1", "equivocal": True}],
            ),
            fu(id="W16", date="2021-04-26", targets={"T1": 20.0}, new_lesions=[{"id": "N2"}]),
        )
    )
    assert result["progression"]["date"] == "2021-04-26"
    assert result["progression"]["back_dated"] is False


def test_a_new_node_without_its_short_axis_is_refused_r_new_1():
    import pytest

    from recist.errors import CaseInputError
    from recist.jsonio import parse_case

    node = {"id": "N1", "site": "lymph node", "nodal": True}
    with pytest.raises(
        CaseInputError,
        match=r"timepoint FU1, lesion N1, field new_lesions: new lesion is a lymph node "
        r"without its short axis.*\(R-NEW-1\)",
    ):
        parse_case(case({"T1": 30.0}, fu(targets={"T1": 30.0}, new_lesions=[node])))
    # Equivocal, it is not PD yet either way (R-NEW-2): accepted without its short axis.
    equivocal = {**node, "equivocal": True}
    result = assess(case({"T1": 30.0}, fu(targets={"T1": 30.0}, new_lesions=[equivocal])))
    assert last(result)["new_lesions"] == "equivocal"
