"""Benchmark: the trial page's five plots, drawn and then served from the plot cache.

The demo trial (``web.demo.seed_demo``, ``--subjects`` synthetic subjects) is loaded into
a throwaway SQLite database; a reviewer's test client then asks for the five plot SVGs
three times: once with an empty cache (every plot drawn), once again (every plot read from
the cache: the key is computed from the reads, nothing is drawn), and once after a new
follow-up of one subject (every plot drawn again, for the data changed). Printed: the
wall time of each round and how many plots were drawn in it
(``web.services.plot_cache.DRAWS``). Usage::

    python benchmarks/bench_plots.py [--subjects 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=40)
    args = parser.parse_args()
    from web.demo import DEMO_TRIAL, seed_demo, seed_users
    from web.services import Actor, get_subject, save_timepoint
    from web.services.plot_cache import DRAWS
    from web.services.plots import PLOTS
    from web.testing import make_test_app, migrated_database

    with (
        tempfile.TemporaryDirectory() as folder,
        migrated_database("sqlite", Path(folder)) as database,
    ):
        app = make_test_app(database, PLOT_CACHE=str(Path(folder) / "plot-cache"))
        session = app.extensions["recist_sessions"]()
        users = seed_users(session)
        seed_demo(session, subjects=args.subjects)
        client = app.test_client()
        reviewer = next(name for name, (role, _) in users.items() if role == "reviewer")
        client.post("/login", data={"username": reviewer, "password": users[reviewer][1]})

        def round_(label: str) -> None:
            drawn = sum(DRAWS.values())
            start = time.perf_counter()
            for kind in PLOTS:
                response = client.get(f"/trials/{DEMO_TRIAL}/plots/{kind}.svg")
                assert response.status_code == 200, (kind, response.status_code)
            took = time.perf_counter() - start
            print(f"{label:<34} {took * 1000:8.0f} ms   {sum(DRAWS.values()) - drawn} drawn")

        print(f"demo trial, {args.subjects} synthetic subjects; five plot SVGs per round")
        round_("empty cache")
        round_("second view (cached)")
        subject = get_subject(session, DEMO_TRIAL, "0101-002")
        last = subject.timepoints[-1]
        save_timepoint(
            session,
            Actor("reader", "reader"),
            DEMO_TRIAL,
            "0101-002",
            {"id": "W99", "date": last.date.replace(year=last.date.year + 1).isoformat(),
             "targets": {}, "non_targets": {}},
        )  # fmt: skip
        round_("after a new follow-up")
        round_("second view again (cached)")
        session.close()


if __name__ == "__main__":
    main()
