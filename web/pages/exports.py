"""The trial's CDISC exports for analysis (SDTM RS, TU, TR; ADaM ADRS, ADTTE): one read per
subject with the responses, BOR and PFS as used (:mod:`web.services.exports`)."""

from __future__ import annotations

from typing import Any

from flask import Response

from web.auth import requires
from web.pages import review as bp
from web.services import request_session


@bp.route("/trials/<trial_code>/exports/<domain>.csv")
@requires("view_audit")
def analysis_export(trial_code: str, domain: str) -> Any:
    """One domain as used; a trial not ready for analysis answers 409 naming the subjects."""
    from web.services.exports import analysis_file

    text, name = analysis_file(request_session(), trial_code, domain)
    return Response(
        text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
