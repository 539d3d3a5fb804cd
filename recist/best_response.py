"""Best overall response (§4.4.3, §4.6.1, table 3): R-BOR-CUT, R-BOR-SDMIN, R-BOR-1,
R-BOR-CONF."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from recist.response import BOR_RANK, Response
from recist.settings import Settings, UnconfirmedBeforePd

_RESPONDING = (Response.CR, Response.PR)
_STABLE = (Response.SD, Response.NON_CR_NON_PD)
_RANKED = (*_RESPONDING, *_STABLE)  # the responses R-BOR-1 ranks above PD


@dataclass(slots=True, init=False, unsafe_hash=True)
class Assessed:  # built per timepoint: see recist.lesions.Timepoint
    """One follow-up timepoint as the best-response rules see it."""

    id: Final[str]
    date: Final[datetime.date]
    response: Final[Response]

    def __init__(self, id: str, date: datetime.date, response: Response) -> None:
        self.id = id
        self.date = date
        self.response = response


@dataclass(slots=True, init=False, unsafe_hash=True)
class BestResponse:
    response: Final[Response]
    timepoint: Final[str | None]  # the timepoint that gave it (None for NE without any)
    reasons: Final[tuple[str, ...]]

    def __init__(
        self,
        response: Response,
        timepoint: str | None,
        reasons: tuple[str, ...],
    ) -> None:
        self.response = response
        self.timepoint = timepoint
        self.reasons = reasons


@dataclass(slots=True, init=False, unsafe_hash=True)
class Query:
    """A data query a reviewer should resolve (e.g. table 3's CR followed by PR)."""

    rule: Final[str]
    timepoint: Final[str]
    message: Final[str]

    def __init__(
        self,
        rule: str,
        timepoint: str,
        message: str,
    ) -> None:
        self.rule = rule
        self.timepoint = timepoint
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "timepoint": self.timepoint, "message": self.message}


def counted_timepoints(
    followups: Sequence[Assessed], settings: Settings, new_therapy_on: date | None
) -> tuple[list[Assessed], list[str]]:
    """R-BOR-CUT: the timepoints up to and including the first PD, and (setting) on or
    before the start of a new anticancer therapy."""
    counted: list[Assessed] = []
    notes: list[str] = []
    for tp in followups:
        if settings.cut_at_new_therapy and new_therapy_on is not None and tp.date > new_therapy_on:
            notes.append(
                f"R-BOR-CUT: timepoints from {tp.id} on are after the new anticancer therapy "
                f"started {new_therapy_on.isoformat()} and do not count"
            )
            break
        counted.append(tp)
        if tp.response is Response.PD:
            break
    return counted, notes


def _sd_qualifies(tp: Assessed, origin: date, settings: Settings) -> bool:
    """R-BOR-SDMIN: SD-like responses count only ≥ ``sd_min_days`` after the origin."""
    return (tp.date - origin).days >= settings.sd_min_days


def _fallback(counted: Sequence[Assessed], reasons: list[str]) -> BestResponse:
    """No qualifying CR, PR or SD: PD if a PD follows, else NE (R-BOR-SDMIN)."""
    for tp in counted:
        if tp.response is Response.PD:
            return BestResponse(Response.PD, tp.id, (*reasons, f"R-BOR-1: PD at {tp.id}"))
    return BestResponse(
        Response.NE, None, (*reasons, "R-BOR-1: no timepoint qualifies for a response: NE")
    )


def best_overall_response_unconfirmed(
    counted: Sequence[Assessed], origin: date, settings: Settings
) -> BestResponse:
    """R-BOR-1: the best counted timepoint, CR > PR > SD = NON-CR/NON-PD > PD > NE."""
    reasons: list[str] = []
    best: Assessed | None = None
    for tp in counted:
        if tp.response in _STABLE and not _sd_qualifies(tp, origin, settings):
            reasons.append(
                f"R-BOR-SDMIN: {tp.response.value} at {tp.id} is "
                f"{(tp.date - origin).days} days after the origin (< {settings.sd_min_days})"
            )
            continue
        if tp.response in _RANKED and (
            best is None or BOR_RANK[tp.response] > BOR_RANK[best.response]
        ):
            best = tp
    if best is None:
        return _fallback(counted, reasons)
    return BestResponse(
        best.response,
        best.id,
        (*reasons, f"R-BOR-1: best response {best.response.value} at {best.id}"),
    )


def confirmation(
    counted: Sequence[Assessed], index: int, settings: Settings
) -> tuple[Response | None, Assessed | None]:
    """R-BOR-CONF: what the response at ``counted[index]`` is confirmed as, and by which
    timepoint. A CR is confirmed by a later CR; a PR (or a CR followed only by PR) by a
    later PR or CR; at least ``confirmation_min_days`` later (and, when set, at most
    ``confirmation_max_days``), with only responses or at most
    ``confirmation_max_ne_between`` NE between, and no PD or SD — except, with
    ``accept_sd``, one SD between a PR and its confirmation. Without
    ``pr_after_cr_confirms`` a PR after a CR (the first one included) ends the search."""
    first = counted[index]
    best: Response | None = None
    by: Assessed | None = None
    ne_between = 0
    sd_between = 0
    sd_allowed = 1 if settings.accept_sd and first.response is Response.PR else 0
    seen_cr = first.response is Response.CR
    most = settings.confirmation_max_days
    for later in counted[index + 1 :]:
        days = (later.date - first.date).days
        if most is not None and days > most:
            break
        if later.response is Response.NE:
            ne_between += 1
            if ne_between > settings.confirmation_max_ne_between:
                break
            continue
        if later.response is Response.SD and sd_between < sd_allowed:
            sd_between += 1
            continue
        if later.response not in _RESPONDING:
            break
        if later.response is Response.PR and seen_cr and not settings.pr_after_cr_confirms:
            break
        seen_cr = seen_cr or later.response is Response.CR
        if days >= settings.confirmation_min_days:
            if first.response is Response.CR and later.response is Response.CR:
                return Response.CR, later
            if best is None:
                best, by = Response.PR, later
    return best, by


def _followed_by_pd(counted: Sequence[Assessed], index: int) -> bool:
    """Whether the next counted assessment after ``counted[index]`` other than NE is PD."""
    for later in counted[index + 1 :]:
        if later.response is not Response.NE:
            return later.response is Response.PD
    return False


def best_overall_response_confirmed(
    counted: Sequence[Assessed], origin: date, settings: Settings, *, has_targets: bool
) -> BestResponse:
    """R-BOR-CONF: best overall response when CR and PR need confirmation (table 3).

    An unconfirmed CR or PR counts as SD (NON-CR/NON-PD without target disease) where
    R-BOR-SDMIN is met, else as NE, or PD when a PD follows; with
    ``unconfirmed_before_pd: "pd"`` one whose next assessment other than NE is PD does not
    count at all.
    """
    reasons: list[str] = []
    confirmed_pr: tuple[Assessed, Assessed] | None = None
    for index, tp in enumerate(counted):
        if tp.response not in _RESPONDING:
            continue
        as_what, by = confirmation(counted, index, settings)
        if as_what is Response.CR and by is not None:
            return BestResponse(
                Response.CR,
                tp.id,
                (f"R-BOR-CONF: CR at {tp.id} confirmed by CR at {by.id}",),
            )
        if as_what is Response.PR and by is not None and confirmed_pr is None:
            confirmed_pr = (tp, by)
        elif as_what is None:
            reasons.append(
                f"R-BOR-CONF: {tp.response.value} at {tp.id} is not confirmed (needs "
                f"{confirmation_needs(tp.response, settings)})"
            )
    if confirmed_pr is not None:
        tp, by = confirmed_pr
        return BestResponse(
            Response.PR,
            tp.id,
            (*reasons, f"R-BOR-CONF: {tp.response.value} at {tp.id} confirmed as PR by {by.id}"),
        )
    stable = Response.SD if has_targets else Response.NON_CR_NON_PD
    before_pd = settings.unconfirmed_before_pd
    for index, tp in enumerate(counted):
        if (
            before_pd is UnconfirmedBeforePd.PD
            and tp.response in _RESPONDING
            and _followed_by_pd(counted, index)
        ):
            reasons.append(
                f"R-BOR-CONF: unconfirmed {tp.response.value} at {tp.id} is followed by PD "
                "and does not count as SD (unconfirmed_before_pd: pd)"
            )
            continue
        if tp.response in _RANKED:
            if _sd_qualifies(tp, origin, settings):
                return BestResponse(
                    stable,
                    tp.id,
                    (
                        *reasons,
                        f"R-BOR-SDMIN: {tp.response.value} at {tp.id} counts as "
                        f"{stable.value} ({(tp.date - origin).days} days ≥ "
                        f"{settings.sd_min_days} after the origin)",
                    ),
                )
            reasons.append(
                f"R-BOR-SDMIN: {tp.response.value} at {tp.id} is "
                f"{(tp.date - origin).days} days after the origin (< {settings.sd_min_days})"
            )
    return _fallback(counted, reasons)


def confirmation_needs(response: Response, settings: Settings) -> str:
    """What R-BOR-CONF asks of a confirmation under ``settings``, for a reason line."""
    if response is Response.PR:
        later = "a later PR or CR"
    elif settings.pr_after_cr_confirms:
        later = "a later CR, or PR for a PR"
    else:
        later = "a later CR"
    window = f"≥ {settings.confirmation_min_days}"
    if settings.confirmation_max_days is not None:
        window += f" and ≤ {settings.confirmation_max_days}"
    needs = [f"{later} {window} days later", f"at most {settings.confirmation_max_ne_between} NE"]
    if settings.accept_sd and response is Response.PR:
        needs.append("at most one SD")
    if not settings.pr_after_cr_confirms:
        needs.append("no PR after a CR")
    return ", ".join(needs[:-1]) + f" and {needs[-1]} between"


def data_queries(followups: Sequence[Assessed]) -> list[Query]:
    """Table 3: a CR followed by a PR is a data query (the CR may have been a PR)."""
    queries = []
    seen_cr: Assessed | None = None
    for tp in followups:
        if tp.response is Response.CR:
            seen_cr = tp
        elif tp.response is Response.PR and seen_cr is not None:
            queries.append(
                Query(
                    "R-BOR-CONF",
                    tp.id,
                    f"PR at {tp.id} follows CR at {seen_cr.id}: check whether the CR was a PR "
                    "(RECIST 1.1 table 3)",
                )
            )
            seen_cr = None
    return queries
