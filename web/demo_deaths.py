"""Deaths in the demo trial (:mod:`web.demo`), so that its overall survival curves have
events in both arms: most after progression, a few without."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

# The chance that a subject of each trajectory (web.demo.TRAJECTORIES) dies after its last
# visit.
DEATH_CHANCE = {"growth": 0.7, "new_lesion": 0.7, "equivocal_confirmed": 0.5, "stable": 0.2}


def maybe_died(case: dict[str, Any], kind: str, fates: random.Random) -> None:
    """Give ``case`` a death date 3 to 20 weeks after its last visit, by chance."""
    if fates.random() < DEATH_CHANCE.get(kind, 0.0):
        last = date.fromisoformat(case["timepoints"][-1]["date"])
        case["died_on"] = (last + timedelta(days=fates.randrange(21, 141))).isoformat()
