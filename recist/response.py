"""Response codes (CDISC RSORRES values for RECIST 1.1) and their ranking (§4.4)."""

from __future__ import annotations

from enum import StrEnum


class Response(StrEnum):
    """A timepoint or best overall response, spelled as CDISC spells it."""

    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NE = "NE"
    NON_CR_NON_PD = "NON-CR/NON-PD"


class NewLesionStatus(StrEnum):
    """Whether a timepoint shows new lesions (§4.3.5)."""

    NO = "no"
    EQUIVOCAL = "equivocal"
    YES = "yes"


# R-BOR-1: CR > PR > SD = NON-CR/NON-PD > PD > NE.
BOR_RANK: dict[Response, int] = {
    Response.CR: 5,
    Response.PR: 4,
    Response.SD: 3,
    Response.NON_CR_NON_PD: 3,
    Response.PD: 2,
    Response.NE: 1,
}
