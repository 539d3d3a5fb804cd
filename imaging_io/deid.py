"""De-identification: the pseudonymous subject key that replaces a PatientID.

A leaf module (standard library only) so that both :mod:`imaging_io.series` (which keys
each series) and :mod:`imaging_io.study` can use it without importing each other.
"""

from __future__ import annotations

import hashlib
import hmac
import os

PSEUDONYM_KEY_ENV = "RECIST_PSEUDONYM_KEY"


def pseudonym(patient_id: str, key: bytes | None = None) -> str:
    """A stable pseudonymous key for a patient ID (HMAC-SHA256, 16 hex digits).

    The key comes from ``key`` or the environment variable ``RECIST_PSEUDONYM_KEY``;
    set one per trial, otherwise anyone can recompute the key from a known patient ID.
    """
    secret = key if key is not None else os.environ.get(PSEUDONYM_KEY_ENV, "recist").encode()
    return hmac.new(secret, patient_id.encode(), hashlib.sha256).hexdigest()[:16]
