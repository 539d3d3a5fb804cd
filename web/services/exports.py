"""The trial's CDISC exports for analysis: one read per subject, as the analyses use it.

The read and the progression call are the ones the trial's plots use
(:func:`web.services.plots.used_reads`): the accepted central read in a trial with
independent central review, else the site read, with an adjudicator's override of its
progression call where there is one. The responses, the best overall response and PFS as
used come from :func:`web.services.as_used.used_result` (R-BOR-USED, §8), for the BOR and
CBOR with confirmation off and on; :mod:`cdisc_io.as_used_export` writes them with where
each value came from (SDTM ``RSEVAL``/``RSEVALID``/``RSACPTFL``; ADaM ``SRCSEQ``,
``USEDSRC``, ``USEDBY``).

Each read's own records stay available as they were: the central-review page exports
both central reads (:func:`web.services.central_export.export_csv`).

The export is refused (``Conflict``) while the trial is not ready for analysis, naming
each subject that holds it back (:func:`export_blockers`):

- in a trial with independent central review, a subject whose central reads are not all
  in or not all adjudicated (its state and the visits the reads call progression at): the
  analysis would otherwise mix central and site reads without saying so;
- a subject whose progression call, as the analysis would use it, is under a reviewer's
  open query (not yet answered by the reader, nor overridden by an adjudicator): the
  PFS event the export would carry is disputed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.errors import Conflict, NotFound
from web.models import ProgressionReview, Subject, Trial

ANALYSIS_DOMAINS = ("rs", "adrs", "adtte", "tu", "tr")

# The plots' source (web.services.plots.SOURCES) → USEDSRC of the export.
_SOURCE = {"engine": "ENGINE", "override": "OVERRIDE"}


def _progression_at(read: Any) -> str:
    progression = (read.result_json or {}).get("progression")
    if not progression:
        return f"read {read.slot} by {read.reader}: no progression"
    return (
        f"read {read.slot} by {read.reader}: PD at {progression['timepoint']} "
        f"on {progression['date']}"
    )


def pending_subjects(session: Session, trial: Trial) -> list[str]:
    """Why each subject of a central-review trial has no accepted central read yet, one
    line per subject (empty when every read subject has one, or without central review)."""
    from web.services.central import overview

    if not trial.central_review:
        return []
    out = []
    for row in overview(session, trial):
        if row.state in ("agreed", "adjudicated"):
            continue
        has_site_read = bool((row.subject.result_json or {}).get("timepoints"))
        if not row.reads and not has_site_read:
            continue  # nothing read yet: not in any analysis
        calls = ", ".join(_progression_at(read) for read in row.reads)
        out.append(f"subject {row.subject.code}: {row.state}" + (f" ({calls})" if calls else ""))
    return out


def queried_calls(session: Session, trial: Trial) -> list[str]:
    """Each subject whose site read the analysis uses and whose progression call, as the
    engine made it, has an unanswered query, one line per subject: the call, who queried
    it, when and why. A call an adjudicator overrode is settled (the override is used);
    with central review the analysis uses the central reads, and the site reads' queue
    does not hold it back."""
    from web.services.progression import open_queries

    if trial.central_review or _never_queried(session, trial):
        return []
    out = []
    for row in open_queries(session, trial):
        if row.override is not None:
            continue  # an adjudicator's call is the one used: a later query does not hold it
        call, query = row.call, row.latest
        line = (
            f"subject {row.subject.code}: progression call PD at {call.timepoint} on "
            f"{call.date.isoformat()} ({call.label}) queried"
        )
        if query is not None:
            comment = " ".join(query.comment.split())
            line += f" by {query.username} on {query.at.date().isoformat()}: “{comment}”"
        out.append(line)
    return out


def _never_queried(session: Session, trial: Trial) -> bool:
    """Whether no progression call of the trial was ever queried: one indexed look-up
    that spares the whole review queue on every trial page of a trial without queries."""
    asked = (
        select(ProgressionReview.id)
        .join(Subject, Subject.id == ProgressionReview.subject_id)
        .where(Subject.trial_id == trial.id, ProgressionReview.action == "queried")
        .limit(1)
    )
    return session.scalar(asked) is None


def export_blockers(session: Session, trial: Trial) -> list[str]:
    """Why the analysis export would be refused now, one line per subject (empty: ready):
    central reads not final (:func:`pending_subjects`), then progression calls under an
    open query (:func:`queried_calls`)."""
    return pending_subjects(session, trial) + queried_calls(session, trial)


def _confirmation(case: dict[str, Any], on: bool) -> dict[str, Any]:
    return {**case, "settings": dict(case.get("settings") or {}) | {"confirmation": on}}


def analysis_reads(session: Session, trial: Trial) -> list[Any]:
    """Every subject with a read, as :class:`cdisc_io.as_used_export.UsedRead`.

    Raises
    ------
    Conflict
        The trial is not ready for analysis (:func:`export_blockers`).
    """
    from cdisc_io.as_used_export import CENTRAL_ADJUDICATED, CENTRAL_AGREED, UsedRead
    from recist.jsonio import assess_json
    from web.services.as_used import used_result
    from web.services.central import overview
    from web.services.common import list_subjects
    from web.services.plots import used_reads
    from web.services.progression import overrides

    pending = pending_subjects(session, trial)
    if pending:
        raise Conflict(
            f"trial {trial.code} has central reads that are not final, so the analysis "
            "export would mix central and site reads; finish them (or export the reads "
            "one by one from the central-review page): " + "; ".join(pending),
            field="central_review",
        )
    queried = queried_calls(session, trial)
    if queried:
        raise Conflict(
            f"trial {trial.code} has progression calls under an open query, so the PFS "
            "events of the analysis export are disputed; the reader answers the query or an "
            "adjudicator overrides the call first (the review queue's CSV lists every call "
            "as it stands): " + "; ".join(queried),
            field="progression_review",
        )
    reviews = {r.subject.code: r for r in overview(session, trial)} if trial.central_review else {}
    subjects = {s.code: s for s in list_subjects(session, trial)}
    overridden = overrides(session, trial)
    out = []
    for item in used_reads(session, trial):
        case, result = item.assessed.case, item.assessed.result
        code = case["subject_id"]
        if item.source == "central":
            adjudication = reviews[code].adjudication
            source = CENTRAL_ADJUDICATED if adjudication else CENTRAL_AGREED
            by = adjudication.adjudicator if adjudication else ""
            out.append(UsedRead(case, result, result, None, source, by))
            continue
        if item.source != "override":
            out.append(UsedRead(case, result, result, None, _SOURCE[item.source]))
            continue
        own: dict[str, Any] = subjects[code].result_json or result
        used = overridden[subjects[code].id]
        variants = tuple(
            used_result(variant, assess_json(variant), used)
            for variant in (_confirmation(case, False), _confirmation(case, True))
        )
        out.append(
            UsedRead(
                case,
                own,
                used_result(case, own, used),
                (variants[0], variants[1]),
                _SOURCE["override"],
                used.get("by") or "",
            )
        )
    return out


def analysis_csv(session: Session, trial: Trial, domain: str) -> str:
    """One domain (a key of :data:`ANALYSIS_DOMAINS`) of the trial's export as used, CSV.

    Raises
    ------
    NotFound
        ``domain`` is not one of :data:`ANALYSIS_DOMAINS`.
    Conflict
        The trial is not ready for analysis (:func:`analysis_reads`).
    """
    from cdisc_io.as_used_export import export_as_used

    if domain not in ANALYSIS_DOMAINS:
        raise NotFound(
            f"there is no analysis export {domain!r}; known: {', '.join(ANALYSIS_DOMAINS)}",
            field="domain",
        )
    frame = export_as_used(analysis_reads(session, trial), studyid=trial.code)[domain]
    return str(frame.to_csv(index=False, lineterminator="\r\n"))


def analysis_file(session: Session, trial_code: str, domain: str) -> tuple[str, str]:
    """One domain of the trial's export for analysis as a download, for the page and the
    API alike: (CSV text, file name). Raises as :func:`analysis_csv`."""
    from web.services.common import get_trial

    trial = get_trial(session, trial_code)
    return analysis_csv(session, trial, domain), f"{trial.code}_analysis_{domain}.csv"
