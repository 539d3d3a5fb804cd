"""Benchmark of `recist assess` on synthetic batches (issue: engine foundation).

For each batch size, in a fresh child process: generate N synthetic subjects (8 timepoints,
6 lesions each, mixed responses) as JSON Lines, then time
  - baseline: json.loads + json.dumps of every line (the same JSON library), and
  - engine: the batch CLI path (read_cases -> assess_batch -> write_results),
and print timepoints/s, the ratio engine/baseline and peak memory (max RSS of the child).
Each size is measured in ``--repeat`` fresh children (default 3: the machine is shared and
noisy); each side's best time is kept, so both sides get the same treatment, and the engine
starts with cold caches every time.
Target: ratio ≤ 3 (the engine adds at most 3x the cost of load+dump) and linear scaling.

    python benchmarks/bench_assess.py            # 1k, 10k
    python benchmarks/bench_assess.py --sizes 1000 10000 100000
    python benchmarks/bench_assess.py --repeat 1   # one child per size
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import subprocess
import sys
import time
from datetime import date, timedelta

TIMEPOINTS = 8
SITES = ["liver", "lung", "lymph node", "bone", "adrenal", "spleen"]


def synthetic_case(rng: random.Random, number: int) -> dict:
    """One subject: 4 targets (one nodal), 2 non-targets, 8 timepoints, a random course."""
    start = date(2020, 1, 6) + timedelta(days=rng.randrange(0, 700))
    targets = {f"T{i}": round(rng.uniform(12, 60), 1) for i in range(1, 5)}
    targets["T4"] = round(rng.uniform(15, 30), 1)  # the nodal target's short axis
    lesions = [
        {"id": f"T{i}", "site": SITES[i - 1], "kind": "target", "nodal": i == 4}
        for i in range(1, 5)
    ] + [{"id": f"NT{i}", "site": "bone", "kind": "non-target"} for i in (1, 2)]
    trend = rng.choice([-0.12, -0.06, 0.0, 0.05, 0.1])
    timepoints = [{"id": "BL", "date": start.isoformat(), "targets": targets,
                   "non_targets": {"NT1": "present", "NT2": "present"}}]
    sizes = dict(targets)
    for k in range(1, TIMEPOINTS):
        sizes = {lid: max(0.0, round(v * (1 + trend + rng.uniform(-0.08, 0.08)), 1))
                 for lid, v in sizes.items()}
        tp_targets: dict = dict(sizes)
        if rng.random() < 0.05:
            tp_targets["T2"] = "not_evaluated"
        if rng.random() < 0.05:
            tp_targets["T1"] = "too_small"
        nt_state = "progression" if rng.random() < 0.03 else "present"
        new = [{"id": f"N{k}", "site": "lung", "equivocal": rng.random() < 0.5}] if (
            rng.random() < 0.04) else []
        timepoints.append({"id": f"W{8 * k}", "date": (start + timedelta(days=56 * k)).isoformat(),
                           "targets": tp_targets,
                           "non_targets": {"NT1": nt_state, "NT2": "present"},
                           "new_lesions": new})
    return {"subject_id": f"SYN-{number:06d}", "arm": rng.choice(["A", "B"]),
            "randomized_on": start.isoformat(), "settings": {"visit_interval_days": 56},
            "lesions": lesions, "timepoints": timepoints}


def measure(n: int) -> dict:
    from recist.cli_assess import assess_batch, read_cases, write_results

    rng = random.Random(20261126 + n)
    text = "".join(json.dumps(synthetic_case(rng, i)) + "\n" for i in range(n))

    t0 = time.perf_counter()
    out = io.StringIO()
    for line in text.splitlines():
        out.write(json.dumps(json.loads(line)) + "\n")
    baseline = time.perf_counter() - t0

    t0 = time.perf_counter()
    form, cases = read_cases(text, "synthetic")
    errors: list[str] = []
    rendered = assess_batch(cases, form, "json", False, errors)
    out = io.StringIO()
    write_results(form, rendered, "json", out)
    engine = time.perf_counter() - t0
    assert not errors, errors[:3]
    assert len(rendered) == n
    return {
        "subjects": n,
        "timepoints": n * TIMEPOINTS,
        "baseline_s": baseline,
        "engine_s": engine,
        "timepoints_per_s": n * TIMEPOINTS / engine,
        "ratio": engine / baseline,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3, help="fresh children per size")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    print(f"{'subjects':>9} {'timepoints/s':>13} {'engine s':>9} {'load+dump s':>12} "
          f"{'ratio':>6} {'peak RSS MB':>12}")
    rows = []
    for n in args.sizes:
        runs = []
        for _ in range(max(1, args.repeat)):
            done = subprocess.run([sys.executable, __file__, "--child", str(n)],
                                  capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout))
        row = dict(runs[0])
        row["baseline_s"] = min(r["baseline_s"] for r in runs)
        row["engine_s"] = min(r["engine_s"] for r in runs)
        row["timepoints_per_s"] = row["timepoints"] / row["engine_s"]
        row["ratio"] = row["engine_s"] / row["baseline_s"]
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        rows.append(row)
        print(f"{row['subjects']:>9} {row['timepoints_per_s']:>13,.0f} {row['engine_s']:>9.2f} "
              f"{row['baseline_s']:>12.2f} {row['ratio']:>6.2f} {row['peak_rss_mb']:>12.0f}")
    if len(rows) > 1:
        first, final = rows[0], rows[-1]
        scale = (final["engine_s"] / first["engine_s"]) / (final["subjects"] / first["subjects"])
        print(f"linearity: time per subject at {final['subjects']} is {scale:.2f}x that at "
              f"{first['subjects']} (1.00 = linear)")


if __name__ == "__main__":
    main()
