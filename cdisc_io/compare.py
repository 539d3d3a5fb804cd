"""Engine responses against the responses recorded in an SDTM RS domain.

For every recorded ``OVRLRESP`` (overall response), ``TRGRESP`` (target response) and
``NTRGRESP`` (non-target response) of a subject, reader and visit, the engine's response
for the same read and timepoint is looked up; a disagreement is listed with the rule ids
the engine cited (``R-TGT-PD``, ``R-REAPPEAR``…) and its reasons, as a reviewer wants to
see them. Recorded values that are not RECIST response codes (``CHECK``) and records with
``RSSTAT = NOT DONE`` are counted apart, never silently dropped.

Reads assessed with ``criteria: "irecist"`` (docs/rules.md §10): a record whose ``RSCAT``
is ``iRECIST`` (or that has no ``RSCAT``) is compared with the engine's iRECIST response
(``iCR`` … ``iCPD``, rules ``I-…``), one whose ``RSCAT`` is ``RECIST 1.1`` with the RECIST
1.1 result the engine gives beside it (``recist1_1``). An ``iRECIST`` record of a read
assessed with RECIST 1.1 has no engine response to meet and is counted apart
(``recorded_other_criteria``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cdisc_io.errors import CdiscFileError
from cdisc_io.sdtm_import import reader_of

if TYPE_CHECKING:
    import pandas as pd

    from cdisc_io.cases import Assessed

RS_REQUIRED = ("USUBJID", "RSTESTCD", "VISIT", "RSEVAL")
RESPONSE_CODES = ("CR", "PR", "SD", "PD", "NE", "NON-CR/NON-PD")
IRECIST_CODES = ("iCR", "iPR", "iSD", "NON-iCR/NON-iUPD", "iUPD", "iCPD", "NE")
# RSCAT (upper case) -> the criteria it names; a read's own criteria when RSCAT is empty.
RECIST_1_1, IRECIST = "recist1.1", "irecist"
CRITERIA_OF_RSCAT = {"RECIST 1.1": RECIST_1_1, "RECIST": RECIST_1_1, "IRECIST": IRECIST}
# A recorded code as the engine spells it (RSSTRESC may come in capitals: ICPD).
_CODES = {
    RECIST_1_1: {code.upper(): code for code in RESPONSE_CODES},
    IRECIST: {code.upper(): code for code in IRECIST_CODES},
}
# RSTESTCD -> the engine result field it is compared with.
COMPARED_TESTS = {
    "OVRLRESP": "overall_response",
    "TRGRESP": "target_response",
    "NTRGRESP": "non_target_response",
}
# The rules that can give each response: the first of them that the engine cites is the
# one counted as the reason for a disagreement (the engine also cites the rules of the
# components that did not decide the overall response).
DECIDING_RULES = {
    "PD": ("R-TGT-PD", "R-REAPPEAR", "R-NT-PD", "R-NEW-1", "R-NEW-2"),
    "NE": ("R-TGT-NE", "R-NT-NE"),
    "PR": ("R-TGT-PR", "R-TGT-HOLD"),
    "SD": ("R-TGT-SD",),
    "CR": ("R-TGT-CR", "R-NT-CR"),
    "NON-CR/NON-PD": ("R-NT-NONCRPD",),
    "iUPD": ("I-UPD-1", "I-UPD-2", "I-UPD-3"),
    "iCPD": ("I-CPD-1", "I-CPD-2", "I-CPD-3", "I-CPD-4"),
    "iPR": ("R-TGT-PR", "R-TGT-HOLD", "I-RESET"),
    "iSD": ("R-TGT-SD", "I-RESET"),
    "iCR": ("R-TGT-CR", "R-NT-CR", "I-RESET"),
    "NON-iCR/NON-iUPD": ("R-NT-NONCRPD", "I-RESET"),
}
_RULE_ID = re.compile(r"\bR-[A-Z0-9]+(?:-[A-Z0-9]+)*\b")
_I_RULE_ID = re.compile(r"\b[RI]-[A-Z0-9]+(?:-[A-Z0-9]+)*\b")
_DATED_VISIT = re.compile(r"^(.*) \((\d{4}-\d{2}-\d{2})\)$")


@dataclass(frozen=True, slots=True)
class Disagreement:
    """One recorded response the engine does not reproduce."""

    subject: str
    reader: str
    visit: str
    date: str
    test: str
    recorded: str
    derived: str | None
    rules: tuple[str, ...]
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The disagreement as one CSV row (``--out``)."""
        return {
            "USUBJID": self.subject,
            "reader": self.reader,
            "VISIT": self.visit,
            "date": self.date,
            "RSTESTCD": self.test,
            "recorded": self.recorded,
            "derived": self.derived,
            "rules": " ".join(self.rules),
            "reasons": " | ".join(self.reasons),
        }


@dataclass
class Comparison:
    """The outcome of :func:`compare`: counts per test, disagreements and what was skipped."""

    compared: Counter[str] = field(default_factory=Counter)
    agreed: Counter[str] = field(default_factory=Counter)
    by_reader: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    disagreements: list[Disagreement] = field(default_factory=list)
    not_response_codes: Counter[str] = field(default_factory=Counter)
    not_done: int = 0
    unmatched: int = 0
    rule_counts: Counter[str] = field(default_factory=Counter)
    warning_counts: Counter[str] = field(default_factory=Counter)
    reads_with_warnings: int = 0
    reads: int = 0
    refused: list[str] = field(default_factory=list)  # reads the engine could not assess
    other_criteria: Counter[str] = field(default_factory=Counter)  # RSCAT not assessed

    def agreement(self, test: str = "OVRLRESP") -> float:
        """Fraction of compared records of ``test`` where the engine agrees (0 if none)."""
        n = self.compared[test]
        return self.agreed[test] / n if n else 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures (what the README quotes)."""
        return {
            "reads": self.reads,
            "reads_refused": self.refused,
            "reads_with_baseline_findings": self.reads_with_warnings,
            "baseline_findings_by_rule": dict(sorted(self.warning_counts.items())),
            "tests": {
                test: {
                    "compared": self.compared[test],
                    "agreed": self.agreed[test],
                    "agreement_pct": round(100 * self.agreement(test), 1),
                }
                for test in COMPARED_TESTS
                if self.compared[test]
            },
            "overall_by_reader": {
                reader: {
                    "compared": c["compared"],
                    "agreed": c["agreed"],
                    "agreement_pct": round(100 * c["agreed"] / c["compared"], 1)
                    if c["compared"]
                    else 0.0,
                }
                for reader, c in sorted(self.by_reader.items())
            },
            "overall_disagreements_by_rule": dict(self.rule_counts.most_common()),
            "recorded_not_a_response_code": dict(self.not_response_codes),
            "recorded_not_done": self.not_done,
            "recorded_without_engine_timepoint": self.unmatched,
            **(
                {"recorded_other_criteria": dict(self.other_criteria)}
                if self.other_criteria
                else {}
            ),
        }


@dataclass(frozen=True, slots=True)
class _Read:
    """One read's engine timepoints by visit name, per criteria the engine answered in."""

    criteria: str  # the read's own: ``recist1.1`` or ``irecist``
    visits: dict[str, dict[str, list[tuple[str, dict[str, Any]]]]]


def _visits(result: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    visits: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for tp in result["timepoints"]:
        match = _DATED_VISIT.match(tp["id"])
        visits[tp["id"]].append((tp["date"], tp))
        if match:  # also findable by the visit name it was split from
            visits[match.group(1)].append((tp["date"], tp))
    return visits


def _index(assessed: list[Assessed]) -> dict[tuple[str, str], _Read]:
    """Engine timepoints by (subject, reader): {criteria: {visit name: [(date, tp)]}}."""
    out: dict[tuple[str, str], _Read] = {}
    for item in assessed:
        reader = item.case.get("reader") or "INVESTIGATOR"
        criteria = IRECIST if item.result.get("criteria") == IRECIST else RECIST_1_1
        visits = {criteria: _visits(item.result)}
        if criteria == IRECIST and item.result.get("recist1_1"):
            visits[RECIST_1_1] = _visits(item.result["recist1_1"])
        out[(item.case["subject_id"], reader)] = _Read(criteria, visits)
    return out


def compare(assessed: list[Assessed], rs: pd.DataFrame, *, file: str = "RS") -> Comparison:
    """Compare engine results with the recorded RS responses.

    Parameters
    ----------
    assessed
        Cases with their results (:func:`cdisc_io.cases.assess_cases`).
    rs
        The RS domain as read by :func:`cdisc_io.csvio.read_domain`.

    Raises
    ------
    CdiscFileError
        RS lacks a required column.
    """
    for column in RS_REQUIRED:
        if column not in rs.columns:
            raise CdiscFileError(
                f"required column {column} is missing", file=file, row=1, column=column
            )
    out = Comparison()
    for item in assessed:
        out.reads += 1
        warnings = item.result.get("warnings", [])
        if warnings:
            out.reads_with_warnings += 1
        for warning in warnings:
            out.warning_counts[warning.get("rule") or "?"] += 1
    index = _index(assessed)

    def col(name: str) -> list[str]:
        return rs[name].tolist() if name in rs.columns else [""] * len(rs)

    rows = zip(
        col("USUBJID"),
        col("RSTESTCD"),
        col("VISIT"),
        col("RSDTC"),
        col("RSEVAL"),
        col("RSEVALID"),
        col("RSSTRESC"),
        col("RSORRES"),
        col("RSSTAT"),
        col("RSCAT"),
        strict=True,
    )
    for subject, test, visit, dtc, ev, evid, stresc, orres, stat, rscat in rows:
        field_name = COMPARED_TESTS.get(test.upper())
        if field_name is None:
            continue
        reader = reader_of(ev, evid)
        read = index.get((subject, reader))
        if read is None:
            continue  # a read that was not imported or not given
        criteria = CRITERIA_OF_RSCAT.get(rscat.strip().upper(), read.criteria)
        visits = read.visits.get(criteria)
        if visits is None:  # iRECIST recorded, the read assessed with RECIST 1.1
            out.other_criteria[rscat.strip() or criteria] += 1
            continue
        if stat.upper() == "NOT DONE":
            out.not_done += 1
            continue
        recorded = _CODES[criteria].get((stresc or orres).upper(), (stresc or orres).upper())
        if recorded not in _CODES[criteria].values():
            out.not_response_codes[recorded or "(empty)"] += 1
            continue
        candidates = visits.get(visit, [])
        if len(candidates) > 1:
            candidates = [c for c in candidates if dtc and c[0].startswith(dtc[:10])]
        if len(candidates) != 1:
            out.unmatched += 1
            continue
        tp_date, tp = candidates[0]
        derived = tp.get(field_name)
        test = test.upper()
        out.compared[test] += 1
        agree = derived == recorded
        if agree:
            out.agreed[test] += 1
        if test == "OVRLRESP":
            out.by_reader[reader]["compared"] += 1
            out.by_reader[reader]["agreed"] += int(agree)
        if not agree:
            reasons = tuple(tp.get("reasons", []))
            rule_id = _I_RULE_ID if criteria == IRECIST else _RULE_ID
            rules = tuple(dict.fromkeys(r for reason in reasons for r in rule_id.findall(reason)))
            if test == "OVRLRESP":
                out.rule_counts[deciding_rule(derived, rules)] += 1
            out.disagreements.append(
                Disagreement(
                    subject, reader, tp["id"], tp_date, test, recorded, derived, rules, reasons
                )
            )
    return out


def deciding_rule(derived: str | None, rules: tuple[str, ...]) -> str:
    """The rule that gave the engine's response: the first cited that can give it."""
    for rule in rules:
        if rule in DECIDING_RULES.get(derived or "", ()):
            return rule
    return rules[0] if rules else "(no rule cited)"


def format_report(result: Comparison, *, limit: int | None = None) -> str:
    """A plain-text report: agreement figures, then every disagreement with its rules."""
    s = result.summary()
    lines = [
        f"reads assessed: {s['reads']} ({s['reads_with_baseline_findings']} with baseline findings)"
    ]
    if result.refused:
        lines.append(f"reads the engine refused (not compared): {len(result.refused)}")
        lines += [f"  {reason}" for reason in result.refused]
    if s["baseline_findings_by_rule"]:
        lines.append(
            "baseline findings by rule: "
            + ", ".join(f"{rule} {n}" for rule, n in s["baseline_findings_by_rule"].items())
        )
    for test, figures in s["tests"].items():
        lines.append(
            f"{test}: {figures['agreed']}/{figures['compared']} agree "
            f"({figures['agreement_pct']} %)"
        )
    for reader, figures in s["overall_by_reader"].items():
        lines.append(
            f"  OVRLRESP {reader}: {figures['agreed']}/{figures['compared']} "
            f"({figures['agreement_pct']} %)"
        )
    if s["overall_disagreements_by_rule"]:
        lines.append(
            "OVRLRESP disagreements by the rule that gave the engine's response: "
            + ", ".join(f"{rule} {n}" for rule, n in s["overall_disagreements_by_rule"].items())
        )
    skipped = []
    if s["recorded_not_a_response_code"]:
        skipped.append(
            "not a response code: "
            + ", ".join(f"{code} ×{n}" for code, n in s["recorded_not_a_response_code"].items())
        )
    if s["recorded_not_done"]:
        skipped.append(f"RSSTAT NOT DONE ×{s['recorded_not_done']}")
    if s["recorded_without_engine_timepoint"]:
        skipped.append(f"no matching engine timepoint ×{s['recorded_without_engine_timepoint']}")
    for rscat, n in s.get("recorded_other_criteria", {}).items():
        skipped.append(f"RSCAT {rscat} (reads not assessed with it) ×{n}")
    if skipped:
        lines.append("recorded, not compared: " + "; ".join(skipped))
    shown = result.disagreements if limit is None else result.disagreements[:limit]
    if shown:
        lines.append("")
        lines.append("subject / reader / visit (date) / test: recorded → engine [rules] reasons")
    for d in shown:
        lines.append(
            f"{d.subject} / {d.reader} / {d.visit} ({d.date}) / {d.test}: {d.recorded} → "
            f"{d.derived} [{' '.join(d.rules) or 'no rule cited'}] {'; '.join(d.reasons)}"
        )
    if limit is not None and len(result.disagreements) > limit:
        lines.append(f"… and {len(result.disagreements) - limit} more (use --out for all)")
    return "\n".join(lines) + "\n"
