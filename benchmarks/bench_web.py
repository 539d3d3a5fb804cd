"""Benchmark: "save a timepoint and get the new assessment" over the JSON API.

The trial's size is loaded (280 subjects × 10 timepoints, synthetic), the application is
served by ``recist serve`` (waitress, several worker processes × threads), and a second process
drives ``PUT /api/v1/trials/…/timepoints/W72`` over loopback with keep-alive connections
for a bounded number of requests. Printed per database: requests/s and p50/p95/p99
latency, plus two baselines measured in the same run against the same server, so that
the numbers read as ratios on any machine:

- ``GET /api/v1/openapi.json``: the cost of a request that does nothing (HTTP, WSGI,
  token check);
- ``POST /api/v1/assess`` of the same subject's case: the engine alone, no database.

Target (issue 5): p95 < 50 ms. Usage::

    python benchmarks/bench_web.py [--requests 600] [--clients 2] [--workers 2] [--threads 4]
        [--sqlite-synchronous FULL|NORMAL]

SQLite commits with ``synchronous=FULL`` (the default for clinical data, web/db.py);
``--sqlite-synchronous NORMAL`` measures the faster setting it replaced.

PostgreSQL runs too when ``BENCH_DATABASE_URL`` or ``TEST_DATABASE_URL`` is set (a
throwaway schema is created and dropped).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUBJECTS = 280
TIMEPOINTS = 10
TRIAL = "BENCH"


# ----------------------------------------------------------------------------- seeding


def seed(database: dict[str, Any]) -> tuple[str, list[str]]:
    """Load the trial: 280 subjects × 10 timepoints; returns (token, subject ids)."""
    from web.db import make_engine, make_session_factory
    from web.demo import DEMO_ARMS, synthetic_case
    from web.services import SYSTEM, create_token, create_trial, create_user, import_case
    from web.services.membership import add_member

    engine = make_engine(database["DATABASE_URL"], schema=database["DATABASE_SCHEMA"])
    session = make_session_factory(engine)()
    create_trial(
        session,
        SYSTEM,
        code=TRIAL,
        title="benchmark",
        arms=DEMO_ARMS,
        settings={"visit_interval_days": 56},
    )
    create_user(session, SYSTEM, username="bench", password="bench password 1", role="reader")
    add_member(session, SYSTEM, username="bench", trial_code=TRIAL)  # per-trial access
    token = create_token(session, SYSTEM, username="bench", name="bench")
    rng = random.Random(5)
    ids = []
    for n in range(SUBJECTS):
        case = synthetic_case(rng, f"B-{n:04d}", timepoints=TIMEPOINTS)
        import_case(session, SYSTEM, TRIAL, case)
        ids.append(case["subject_id"])
    session.close()
    engine.dispose()
    return token, ids


# ----------------------------------------------------------------------------- client


def _request(
    conn: http.client.HTTPConnection, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any, float]:
    payload = None if body is None else json.dumps(body)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    start = time.perf_counter()
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - start
    return response.status, json.loads(data) if data else None, elapsed


def client_main(
    url: str, token: str, subjects: list[str], requests: int, clients: int
) -> dict[str, Any]:
    """Run in the second process: drive the server, return latencies in ms."""
    host, port = url.removeprefix("http://").split(":")
    per_client = [subjects[i::clients] for i in range(clients)]
    results: dict[str, list[float]] = {"save": [], "noop": [], "assess": []}
    errors: list[str] = []
    lock = threading.Lock()
    budget = requests // clients
    last = f"W{(TIMEPOINTS - 1) * 8}"

    def worker(mine: list[str], seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        versions: dict[str, tuple[int, dict[str, Any]]] = {}
        for subject in mine:
            status, body, _ = _request(
                conn, "GET", f"/api/v1/trials/{TRIAL}/subjects/{subject}/timepoints/{last}", token
            )
            assert status == 200, body
            versions[subject] = (body["version"], body)
        _status, case_body, _ = _request(
            conn, "GET", f"/api/v1/trials/{TRIAL}/subjects/{mine[0]}", token
        )
        case = case_body["case"]
        for tp in case["timepoints"]:
            tp.pop("version", None)
        local: dict[str, list[float]] = {"save": [], "noop": [], "assess": []}
        ready.wait()  # every connection has loaded its subjects: start the clock together
        began = time.perf_counter()
        for i in range(budget):
            subject = rng.choice(mine)
            version, tp = versions[subject]
            targets = {
                k: (round(v * rng.uniform(0.9, 1.1), 1) if isinstance(v, float) else v)
                for k, v in tp["targets"].items()
            }
            body = {
                "date": tp["date"],
                "targets": targets,
                "non_targets": tp["non_targets"],
                "new_lesions": tp["new_lesions"],
                "version": version,
                # A change after first entry needs a reason (audit trail, issue 6).
                "reason": "benchmark re-measure",
            }
            status, answer, elapsed = _request(
                conn,
                "PUT",
                f"/api/v1/trials/{TRIAL}/subjects/{subject}/timepoints/{last}",
                token,
                body,
            )
            if status != 200 or "result" not in answer:
                with lock:
                    errors.append(f"{status} {answer}")
                continue
            local["save"].append(elapsed * 1000)
            versions[subject] = (answer["timepoint"]["version"], tp)
            if i % 4 == 0:
                _s, _b, t_noop = _request(conn, "GET", "/api/v1/openapi.json", token)
                local["noop"].append(t_noop * 1000)
                _s, _b, t_assess = _request(conn, "POST", "/api/v1/assess", token, case)
                local["assess"].append(t_assess * 1000)
        conn.close()
        with lock:
            loop_seconds.append(time.perf_counter() - began)
            for key, values in local.items():
                results[key].extend(values)

    ready = threading.Barrier(clients)
    loop_seconds: list[float] = []
    threads = [threading.Thread(target=worker, args=(mine, i)) for i, mine in enumerate(per_client)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = max(loop_seconds)
    return {"latencies": results, "wall_s": wall, "errors": errors[:5], "error_count": len(errors)}


# ----------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    database: dict[str, Any], threads: int, workers: int
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database["DATABASE_URL"],
        "RECIST_SECRET_KEY": "bench-secret",
        "RECIST_INSTANCE": tempfile.mkdtemp(),
    }
    if database["DATABASE_SCHEMA"]:
        env["RECIST_DATABASE_SCHEMA"] = database["DATABASE_SCHEMA"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recist",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--threads",
            str(threads),
            "--workers",
            str(workers),
        ],
        env=env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                message = proc.stderr.read().decode() if proc.stderr else "server exited"
                raise RuntimeError(message) from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 30 s")


def run_backend(name: str, database: dict[str, Any], args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    token, subjects = seed(database)
    seeded = time.perf_counter() - t0
    proc, url = start_server(database, args.threads, args.workers)
    try:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--client",
                url,
                "--token",
                token,
                "--requests",
                str(args.requests),
                "--clients",
                str(args.clients),
            ],
            input=json.dumps(subjects).encode(),
            capture_output=True,
            check=True,
            cwd=ROOT,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    report = json.loads(out.stdout)
    lat = report["latencies"]
    save = lat["save"]
    noop_p50 = statistics.median(lat["noop"])
    assess_p50 = statistics.median(lat["assess"])
    cuts = statistics.quantiles(save, n=100, method="inclusive")
    p50, p95, p99 = cuts[49], cuts[94], cuts[98]
    print(
        f"\n== {name}: {SUBJECTS} subjects × {TIMEPOINTS} timepoints "
        f"(seeded in {seeded:.1f} s); waitress {args.workers} processes × {args.threads} "
        "threads; "
        f"{args.clients} client connections in a second process"
    )
    print(
        f"save timepoint + new assessment: {len(save)} requests, "
        f"{len(save) / report['wall_s']:.0f} req/s (all traffic interleaved), "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, "
        f"errors {report['error_count']}"
    )
    print(
        f"baselines (same run): no-op GET p50 {noop_p50:.1f} ms; stateless assess "
        f"p50 {assess_p50:.1f} ms"
    )
    print(
        f"ratios: save p50 / no-op p50 = {p50 / noop_p50:.1f}×; "
        f"save p50 / assess p50 = {p50 / assess_p50:.1f}×"
    )
    print(f"target p95 < 50 ms: {'met' if p95 < 50 else 'NOT met'} ({p95:.1f} ms)")
    if report["errors"]:
        print("first errors:", *report["errors"], sep="\n  ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--clients", type=int, default=2)  # one per core of the CI machine
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument(
        "--sqlite-synchronous",
        type=str.upper,
        choices=("FULL", "NORMAL"),
        help="SQLite's synchronous level for the run (default: the application's, FULL)",
    )
    args = parser.parse_args()
    if args.sqlite_synchronous:
        os.environ["RECIST_SQLITE_SYNCHRONOUS"] = args.sqlite_synchronous
    if args.client:
        subjects = json.loads(sys.stdin.read())
        json.dump(
            client_main(args.client, args.token, subjects, args.requests, args.clients), sys.stdout
        )
        return 0

    from web.testing import migrated_database

    pg = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    with tempfile.TemporaryDirectory() as folder:
        if args.only in (None, "sqlite"):
            with migrated_database("sqlite", Path(folder)) as database:
                from web.db import sqlite_synchronous

                run_backend(f"SQLite (synchronous={sqlite_synchronous()})", database, args)
        if args.only in (None, "postgresql"):
            if pg:
                os.environ["TEST_DATABASE_URL"] = pg
                with migrated_database("postgresql", Path(folder)) as database:
                    run_backend("PostgreSQL", database, args)
            else:
                print("\n(PostgreSQL skipped: set BENCH_DATABASE_URL or TEST_DATABASE_URL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
