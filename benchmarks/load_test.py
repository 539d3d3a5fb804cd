"""Load test: readers saving timepoints at once, and proof that nothing was lost or merged.

The real server (``recist serve``: waitress, several worker processes × threads) runs on
PostgreSQL (and SQLite with ``--backend sqlite``); a second process drives it over
loopback with one keep-alive connection per simulated reader, for a bounded number of
saves and a bounded time. Two phases:

- **distinct**: each reader re-measures the last follow-up of subjects nobody else edits;
- **same**: every reader re-measures the same few subjects, each save carrying the version
  it read; a 409 (``concurrent_edit``) is a conflict detected, the reader reloads and tries
  again (at most 5 times).

Every save writes a value no other save writes: each target of the timepoint gets the
save's marker in its fourth decimal (R-EXACT keeps it exactly). Afterwards, with the server
stopped, the database is read back and checked:

- **no acknowledged write lost**: every save answered 200 appears in the audit trail with
  its marker, and for each subject the stored values carry the marker of the acknowledged
  save with the highest version;
- **no two writes merged**: every stored timepoint carries one marker on all its targets.

Printed: saves/s, p50/p95 latency, conflicts, and the two checks (counts). The numbers are
from this machine; the checks are the point. Usage::

    python benchmarks/load_test.py [--readers 6] [--saves 40] [--backend postgresql|sqlite]

PostgreSQL needs ``BENCH_DATABASE_URL`` or ``TEST_DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_web import start_server

TRIAL = "LOAD"
SUBJECTS = 30
TIMEPOINTS = 4
LAST = f"W{(TIMEPOINTS - 1) * 8}"
SAME = 3  # subjects every reader edits in the "same" phase
MAX_TRIES = 5
DEADLINE_S = 120  # no phase runs longer than this


def seed(database: dict[str, Any], readers: int) -> tuple[list[str], list[str]]:
    """The trial, one reader account and token per simulated reader; (tokens, subjects)."""
    from web.db import make_engine, make_session_factory
    from web.demo import DEMO_ARMS, synthetic_case
    from web.services import SYSTEM, create_token, create_trial, create_user, import_case

    engine = make_engine(database["DATABASE_URL"], schema=database["DATABASE_SCHEMA"])
    session = make_session_factory(engine)()
    create_trial(session, SYSTEM, code=TRIAL, title="load test", arms=DEMO_ARMS)
    tokens = []
    for n in range(readers):
        name = f"reader{n}"
        create_user(
            session,
            SYSTEM,
            username=name,
            password="load test password",
            role="reader",
            trials=[TRIAL],
        )
        tokens.append(create_token(session, SYSTEM, username=name, name="load"))
    rng = random.Random(11)
    subjects = []
    for n in range(SUBJECTS):
        case = synthetic_case(rng, f"L-{n:03d}", timepoints=TIMEPOINTS)
        case.pop("settings", None)
        import_case(session, SYSTEM, TRIAL, case)
        subjects.append(case["subject_id"])
    session.close()
    engine.dispose()
    return tokens, subjects


# ----------------------------------------------------------------------------- client


def _call(
    conn: http.client.HTTPConnection, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any, float]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    start = time.perf_counter()
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, json.loads(data) if data else None, time.perf_counter() - start


def _marked(tp: dict[str, Any], marker: int) -> dict[str, Any]:
    """The timepoint with every target measured and carrying ``marker`` (1…9999) in its
    fourth decimal: 12.0034 mm is save 34's."""
    targets = {code: 10 + i + marker / 10_000 for i, code in enumerate(sorted(tp["targets"]))}
    return {
        "date": tp["date"],
        "targets": targets,
        "non_targets": tp["non_targets"],
        "new_lesions": tp["new_lesions"],
    }


def client_main(url: str, tokens: list[str], subjects: list[str], saves: int) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    readers = len(tokens)
    acks: list[dict[str, Any]] = []  # every save answered 200
    report: dict[str, Any] = {}
    lock = threading.Lock()
    counter = iter(range(1, 10_000))

    def next_marker() -> int:
        with lock:
            return next(counter)

    def phase(name: str, pick: Any) -> None:
        latencies: list[float] = []
        conflicts = [0]
        gave_up = [0]
        failures: list[str] = []
        barrier = threading.Barrier(readers)

        def reader(index: int) -> None:
            rng = random.Random(index)
            token = tokens[index]
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            barrier.wait()
            began = time.perf_counter()
            for _ in range(saves):
                if time.perf_counter() - began > DEADLINE_S:
                    break
                subject = pick(index, rng)
                path = f"/api/v1/trials/{TRIAL}/subjects/{subject}/timepoints/{LAST}"
                for _attempt in range(MAX_TRIES):
                    status, tp, _ = _call(conn, "GET", path, token)
                    if status != 200:
                        failures.append(f"GET {status}")
                        break
                    marker = next_marker()
                    body = {**_marked(tp, marker), "version": tp["version"]}
                    body["reason"] = "load test re-measure"
                    status, answer, elapsed = _call(conn, "PUT", path, token, body)
                    if status == 200:
                        with lock:
                            latencies.append(elapsed * 1000)
                            acks.append(
                                {
                                    "subject": subject,
                                    "marker": marker,
                                    "version": answer["timepoint"]["version"],
                                }
                            )
                        break
                    if status == 409:
                        with lock:
                            conflicts[0] += 1
                        continue
                    failures.append(f"PUT {status} {answer}")
                    break
                else:
                    with lock:
                        gave_up[0] += 1  # five conflicts in a row: the reader moves on
            conn.close()

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        report[name] = {
            "saves": len(latencies),
            "wall_s": wall,
            "latencies": latencies,
            "conflicts": conflicts[0],
            "gave_up": gave_up[0],
            "failures": failures[:5],
            "failure_count": len(failures),
        }

    own = [subjects[SAME:][i::readers] for i in range(readers)]
    phase("distinct", lambda index, rng: rng.choice(own[index]))
    phase("same", lambda index, rng: rng.choice(subjects[:SAME]))
    report["acks"] = acks
    return report


# ----------------------------------------------------------------------------- checks


def check(database: dict[str, Any], acks: list[dict[str, Any]]) -> dict[str, int]:
    """Read the database back (server stopped): lost and merged writes."""
    from sqlalchemy import select

    from web.db import make_engine, make_session_factory
    from web.models import AuditRecord
    from web.services import build_case, get_subject

    engine = make_engine(database["DATABASE_URL"], schema=database["DATABASE_SCHEMA"])
    session = make_session_factory(engine)()
    audited: set[tuple[str, int]] = set()
    rows = session.execute(
        select(AuditRecord.entity_key, AuditRecord.new).where(
            AuditRecord.entity == "measurement", AuditRecord.field == "targets"
        )
    )
    for key, new in rows:
        subject = key.split("/")[1]
        try:
            value = float(new)
        except (TypeError, ValueError):
            continue
        audited.add((subject, round((value % 1) * 10_000)))
    lost_in_trail = sum((a["subject"], a["marker"]) not in audited for a in acks)
    last: dict[str, dict[str, Any]] = {}
    for ack in acks:
        if ack["subject"] not in last or ack["version"] > last[ack["subject"]]["version"]:
            last[ack["subject"]] = ack
    merged = lost_final = 0
    for subject, ack in last.items():
        case = build_case(get_subject(session, TRIAL, subject))
        targets = next(tp for tp in case["timepoints"] if tp["id"] == LAST)["targets"]
        markers = {round((v % 1) * 10_000) for v in targets.values()}
        merged += len(markers) != 1
        lost_final += markers != {ack["marker"]}
    versions_unique = len({(a["subject"], a["version"]) for a in acks}) == len(acks)
    session.close()
    engine.dispose()
    return {
        "acknowledged": len(acks),
        "lost_in_trail": lost_in_trail,
        "lost_final": lost_final,
        "merged": merged,
        "duplicate_versions": 0 if versions_unique else 1,
        "subjects_checked": len(last),
    }


def run(database: dict[str, Any], args: argparse.Namespace, name: str) -> int:
    tokens, subjects = seed(database, args.readers)
    proc, url = start_server(database, args.threads, args.workers)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--client", url, "--saves", str(args.saves)],
            input=json.dumps({"tokens": tokens, "subjects": subjects}).encode(),
            capture_output=True,
            check=True,
            timeout=2 * DEADLINE_S + 60,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    report = json.loads(out.stdout)
    print(
        f"\n== {name}: {args.readers} readers (one connection each, second process), "
        f"server {args.workers} processes × {args.threads} threads"
    )
    for phase in ("distinct", "same"):
        r = report[phase]
        lat = r["latencies"]
        cuts = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
        print(
            f"{phase:8s}: {r['saves']} saves in {r['wall_s']:.1f} s = "
            f"{r['saves'] / r['wall_s']:.1f} saves/s; p50 {cuts[49]:.1f} ms, "
            f"p95 {cuts[94]:.1f} ms; conflicts detected (409) {r['conflicts']}, saves given "
            f"up after {MAX_TRIES} conflicts {r['gave_up']}; other failures {r['failure_count']}"
        )
        for failure in r["failures"]:
            print("   ", failure)
    verdict = check(database, report["acks"])
    print(
        f"checks: {verdict['acknowledged']} acknowledged saves; lost from the audit trail "
        f"{verdict['lost_in_trail']}; subjects whose stored values are not the last "
        f"acknowledged save {verdict['lost_final']} of {verdict['subjects_checked']}; "
        f"timepoints mixing two saves {verdict['merged']}; two saves acknowledged with one "
        f"version {verdict['duplicate_versions']}"
    )
    bad = verdict["lost_in_trail"] + verdict["lost_final"] + verdict["merged"]
    return 1 if bad or verdict["duplicate_versions"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--saves", type=int, default=40, help="saves per reader per phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        given = json.loads(sys.stdin.read())
        json.dump(client_main(args.client, given["tokens"], given["subjects"], args.saves),
                  sys.stdout)  # fmt: skip
        return 0

    from web.testing import migrated_database

    with tempfile.TemporaryDirectory() as folder:
        if args.backend == "postgresql":
            pg = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
            if not pg:
                print("PostgreSQL needs BENCH_DATABASE_URL or TEST_DATABASE_URL")
                return 2
            os.environ["TEST_DATABASE_URL"] = pg
            with migrated_database("postgresql", Path(folder)) as database:
                return run(database, args, "PostgreSQL")
        with migrated_database("sqlite", Path(folder)) as database:
            return run(database, args, "SQLite")


if __name__ == "__main__":
    sys.exit(main())
