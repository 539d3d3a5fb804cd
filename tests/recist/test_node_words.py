"""One definition of "this site or label is a lymph node" (R-MEAS-2, R-SEL-2), used by
the engine, imaging_io (segment labels), cdisc_io (TULOC) and the web (upload matching)."""

from __future__ import annotations

import pytest

from recist.lesions import names_a_node


@pytest.mark.parametrize(
    "text",
    ["lymph node", "axillary lymph node", "LYMPH NODE", "node", "Nodes", "nodal disease",
     "lymph-node 1", "Mediastinal lymphnode", "LYMPH"],
)  # fmt: skip
def test_node_words_name_a_node(text: str) -> None:
    assert names_a_node(text)


@pytest.mark.parametrize(
    "text", ["lymphangitic carcinomatosis", "lung nodule", "liver", "", None, "adrenal"]
)
def test_other_sites_and_lymphangitic_spread_are_not_nodes(text: str | None) -> None:
    assert not names_a_node(text)


def test_any_of_several_texts_may_name_it() -> None:
    assert names_a_node("Lesion 3", "Lymph node structure")
    assert not names_a_node("Lesion 3", None)
