"""The application's clock: what "today" is when dates are judged (R-PLAUS-DATE).

A date after today is refused on every way in. Tests and demonstrations set the day with
the ``TODAY`` setting (``RECIST_TODAY`` in the environment, an ISO date); otherwise it is
the server's date in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import current_app, has_app_context


def today() -> date:
    """Today as the application sees it (``TODAY`` if set, else the UTC date)."""
    if has_app_context():
        fixed = current_app.config.get("TODAY")
        if isinstance(fixed, date):
            return fixed
        if isinstance(fixed, str) and fixed:
            return date.fromisoformat(fixed)
    return datetime.now(UTC).date()
