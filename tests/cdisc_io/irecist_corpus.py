"""A pytest plugin that records the iRECIST cases the engine's own tests assess.

``python -m pytest -p tests.cdisc_io.irecist_corpus tests/recist/…`` with
``RECIST_IRECIST_CORPUS=PATH`` appends, as JSON Lines, every case with ``criteria:
"irecist"`` that :func:`recist.jsonio.parse_case` accepted (``assess_json`` parses through
it too). tests/cdisc_io/test_sdtm_irecist_round_trip.py round-trips them through SDTM, so
each iRECIST case the engine tests know is also a case the SDTM mapping must carry.
"""

from __future__ import annotations

import json
import os
from typing import Any

import recist.jsonio as jsonio

_parse_case = jsonio.parse_case
_OUT = os.environ.get("RECIST_IRECIST_CORPUS")


def _recording_parse_case(obj: Any, **kwargs: Any) -> Any:
    try:
        text = json.dumps(obj, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        text = None  # not a JSON case (a test of the refusal of one)
    parsed = _parse_case(obj, **kwargs)
    settings = obj.get("settings") if isinstance(obj, dict) else None
    if _OUT and text and isinstance(settings, dict) and settings.get("criteria") == "irecist":
        with open(_OUT, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return parsed


jsonio.parse_case = _recording_parse_case
