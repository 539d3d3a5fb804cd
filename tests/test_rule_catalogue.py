"""The rule catalogue (docs/rules.md) and the code cite the same rule ids.

Every rule id cited in the code must be defined in the catalogue, so that a reader can look
up any reason the engine gives; every rule the catalogue defines must be cited somewhere in
the code, so that the catalogue describes no rule the code does not implement.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "docs" / "rules.md"
CONTRACTS = ROOT / "docs" / "contracts.md"
CODE_PACKAGES = ("recist", "imaging_io", "cdisc_io", "endpoints", "web")
CODE_SUFFIXES = frozenset({".py", ".html", ".js"})

_ID = r"[RI]-[A-Z]+(?:-[A-Z0-9]+)*"
# A cited rule id: R- (RECIST 1.1 and the project's own rules) or I- (iRECIST, §10) and
# upper-case words joined by hyphens (R-TGT-PD, R-MEAS-1, R-EXACT, I-CPD-1).
# The look-behind keeps the tail of a longer name out (STEREO-SEIN-ICR-DEMO cites no rule).
CITED_ID = re.compile(rf"(?<![\w-]){_ID}")
# A rule: a list item that opens with its id in bold ("- **R-TGT-PD** Progression: …").
RULE_ENTRY = re.compile(rf"^- \*\*({_ID})\*\*", re.MULTILINE)
# A family: "(family **R-MEAS**)" in a section heading.
FAMILY_ENTRY = re.compile(rf"^#+ .*\(family \*\*({_ID})\*\*\)", re.MULTILINE)



@cache
def catalogue_text() -> str:
    return CATALOGUE.read_text(encoding="utf-8")


def defined_rules() -> list[str]:
    """The rule ids the catalogue defines, in order (a repeated id appears twice)."""
    return RULE_ENTRY.findall(catalogue_text())


def defined_families() -> list[str]:
    return FAMILY_ENTRY.findall(catalogue_text())


def code_files() -> Iterator[Path]:
    for package in CODE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.suffix in CODE_SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                yield path


def citations(paths: Iterator[Path] | list[Path]) -> dict[str, list[str]]:
    """Rule id → the places (``path:line``) that cite it."""
    found: dict[str, list[str]] = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            for rule in CITED_ID.findall(line):
                found.setdefault(rule, []).append(f"{path.relative_to(ROOT)}:{number}")
    return found


@cache
def code_citations() -> dict[str, list[str]]:
    return citations(code_files())


def _listing(ids: set[str], where: dict[str, list[str]] | None = None) -> str:
    lines = []
    for rule in sorted(ids):
        places = (where or {}).get(rule, [])
        more = f" (+{len(places) - 3} more)" if len(places) > 3 else ""
        lines.append(f"  {rule}" + (f": {', '.join(places[:3])}{more}" if places else ""))
    return "\n".join(lines)


def test_the_catalogue_defines_the_rules_of_every_section_once() -> None:
    rules = defined_rules()
    twice = {rule for rule in rules if rules.count(rule) > 1}
    assert not twice, "rule ids defined more than once in docs/rules.md:\n" + _listing(twice)
    # The parser still finds the catalogue's entries (a format change must not empty it).
    for expected in (
        "R-MEAS-1",
        "R-SEL-3",
        "R-TGT-PD",
        "R-EXACT",
        "R-NT-NONCRPD",
        "R-BOR-CONF",
        "I-UPD-1",
        "I-CPD-1",
    ):
        assert expected in rules, f"docs/rules.md no longer defines {expected} as '- **id**'"
    assert len(rules) >= 35, f"only {len(rules)} rules parsed from docs/rules.md"


def test_every_family_of_the_catalogue_groups_rules() -> None:
    rules = set(defined_rules())
    families = defined_families()
    assert {"R-MEAS", "R-SEL"} <= set(families), families
    empty = {f for f in families if not any(rule.startswith(f + "-") for rule in rules)}
    assert not empty, "families in docs/rules.md without a rule of their own:\n" + _listing(empty)
    clash = set(families) & rules
    assert not clash, "ids defined both as a rule and as a family:\n" + _listing(clash)


def test_every_rule_id_cited_in_code_is_in_the_catalogue() -> None:
    cited = code_citations()
    defined = set(defined_rules()) | set(defined_families())
    unknown = set(cited) - defined
    assert not unknown, (
        "rule ids cited in code but not defined in docs/rules.md (define them there, or fix "
        "the citation):\n" + _listing(unknown, cited)
    )


def test_every_rule_of_the_catalogue_is_cited_in_code() -> None:
    cited = set(code_citations())
    uncited = set(defined_rules()) - cited
    assert not uncited, (
        "rules defined in docs/rules.md but cited nowhere in "
        + ", ".join(f"{p}/" for p in CODE_PACKAGES)
        + " (implement and cite them, or drop them from the catalogue):\n"
        + _listing(uncited)
    )


def test_rule_ids_in_the_docs_resolve_in_the_catalogue() -> None:
    mentioned = citations([CATALOGUE, CONTRACTS])
    defined = set(defined_rules()) | set(defined_families())
    unknown = set(mentioned) - defined
    assert not unknown, (
        "rule ids mentioned in docs/rules.md or docs/contracts.md but not defined in "
        "docs/rules.md:\n" + _listing(unknown, mentioned)
    )
