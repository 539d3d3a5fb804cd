"""The exports of independent central review: every central read as ADaM ADRS/ADTTE or SDTM
TU/TR/RS, with its reader and accepted flag (:mod:`web.services.central`)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from web.errors import NotFound
from web.models import Trial
from web.services.central import overview, unblinded_case

EXPORT_DOMAINS = ("adrs", "adtte", "tu", "tr", "rs")


def export_csv(session: Session, trial: Trial, domain: str) -> str:
    """ADaM ADRS/ADTTE or SDTM TU/TR/RS of every central read, with the reader
    (``RSEVALID``/``TREVALID``…) and the accepted flag (``RSACPTFL``/``TRACPTFL``…), through
    the :mod:`cdisc_io` exporters. The arm, randomisation, death and new-therapy dates come
    from the subject here, after the reads were made blind (:func:`unblinded_case`).

    Raises
    ------
    NotFound
        ``domain`` is not one of :data:`EXPORT_DOMAINS`.
    """
    from cdisc_io.adam_export import export_adam
    from cdisc_io.cases import Assessed
    from cdisc_io.sdtm_export import export_sdtm

    if domain not in EXPORT_DOMAINS:
        raise NotFound(
            f"there is no export {domain!r}; known: {', '.join(EXPORT_DOMAINS)}", field="domain"
        )
    from web.services.progression import with_progression

    assessed = []
    for row in overview(session, trial):
        subject = row.subject
        for read in row.reads:
            # The read was made blind: PFS and OS again with the subject's death and
            # new-therapy dates, exactly as the trial plots take them (trial_plots).
            case = unblinded_case(subject, read)
            result = with_progression(case, read.result_json, read.result_json["progression"])
            assessed.append(Assessed(case=case, result=result))
    if domain in ("adrs", "adtte"):
        adrs, adtte = export_adam(assessed, studyid=trial.code)
        frame = adrs if domain == "adrs" else adtte
    else:
        tu, tr, rs = export_sdtm(assessed, studyid=trial.code)
        frame = {"tu": tu, "tr": tr, "rs": rs}[domain]
    return str(frame.to_csv(index=False, lineterminator="\r\n"))
