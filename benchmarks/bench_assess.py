"""Benchmark of `recist assess` on synthetic batches (issue: engine foundation; issue 15).

For each batch size, in fresh child processes: generate N synthetic subjects (8
timepoints, 6 lesions each, mixed responses) as JSON Lines, then time
  - baseline: json.loads + json.dumps of every line (the same JSON library), and
  - engine: the batch CLI path (read_cases -> assess_batch -> write_results),
and report the ratio engine/baseline, timepoints/s and peak memory (max RSS of the child,
and how much the engine added to the RSS the input and the baseline had reached).
Each size runs in ``--repeat`` fresh children (default 5: the machine may be shared and
noisy); each child measures both sides back to back, so its ratio compares times taken
under the same load. The table shows the median ratio and its spread over the children
(min-max), and the median times. Linearity: engine time per subject at each size against
the first size (1.00 = linear).
Target: ratio <= 3 (the engine adds at most 3x the cost of load+dump) and linear scaling.
The baseline is the standard library's json module, as a user's own script would read and
write the data; the engine reads with pydantic-core's parser (validating as it parses) and
writes its results with pydantic-core's serializer. The last column, for context only,
divides the engine's time by the time merely to load the input and dump the results it
writes (about three times the input) with the engine's own library: how much the engine
costs beyond the I/O it cannot avoid.

    python benchmarks/bench_assess.py                  # 1k, 10k; 5 children each
    python benchmarks/bench_assess.py --large          # and 100k (about a minute a child)
    python benchmarks/bench_assess.py --sizes 2000 --repeat 9
    python benchmarks/bench_assess.py --large --to-file   # both sides write a real file

Both sides write into memory (a StringIO) by default; ``--to-file`` has both write a
temporary file instead, as ``recist assess cases.jsonl > results.jsonl`` does: then the
peak memory is the engine's own (a large batch's output is spooled to disk until the
batch is done, never held whole), not that of a StringIO holding every result.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from typing import TextIO

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


def _sink(to_file: bool) -> TextIO:
    if to_file:
        return tempfile.TemporaryFile("w+", encoding="utf-8")
    return io.StringIO()


def measure(n: int, to_file: bool = False) -> dict:
    from recist.cli_assess import assess_batch, read_cases, write_results

    rng = random.Random(20261126 + n)
    text = "".join(json.dumps(synthetic_case(rng, i)) + "\n" for i in range(n))

    t0 = time.perf_counter()
    out = _sink(to_file)
    for line in text.splitlines():
        out.write(json.dumps(json.loads(line)) + "\n")
    out.flush()
    baseline = time.perf_counter() - t0
    out.close()
    del out
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t0 = time.perf_counter()
    form, cases = read_cases(text, "synthetic")
    errors: list[str] = []
    rendered = assess_batch(cases, form, "json", False, errors)
    out = _sink(to_file)
    write_results(form, rendered, "json", out)
    out.flush()
    engine = time.perf_counter() - t0
    out.close()
    assert not errors, errors[:3]
    assert len(rendered) == n
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del rendered
    io_floor = _io_floor(text)
    return {
        "subjects": n,
        "timepoints": n * TIMEPOINTS,
        "baseline_s": baseline,
        "engine_s": engine,
        "ratio": engine / baseline,
        "peak_rss_mb": peak,
        "engine_rss_mb": peak - rss_before,
        "io_floor_s": io_floor,
    }


def _io_floor(text: str, chunk: int = 1000) -> float:
    """The time merely to load the input and to dump the results the engine writes, with
    the engine's own JSON library (pydantic-core) and encoder: the I/O no engine can
    avoid, for context (the results are ~3x the input's size). Made chunk by chunk,
    outside the timing, so the result dicts of a large batch are never all held."""
    from pydantic_core import from_json

    from recist.cli_assess import encode_result
    from recist.jsonio import assess_json_line

    lines = text.splitlines()
    total = 0.0
    for start in range(0, len(lines), chunk):
        part = lines[start : start + chunk]
        results = [assess_json_line(line) for line in part]
        t0 = time.perf_counter()
        for line in part:
            from_json(line)
        for result in results:
            encode_result(result)
        total += time.perf_counter() - t0
    return total


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--large", action="store_true", help="add 100,000 subjects")
    parser.add_argument("--repeat", type=int, default=5, help="fresh children per size")
    parser.add_argument("--to-file", action="store_true", help="write a temporary file")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.to_file)))
        return
    sizes = [*args.sizes, 100_000] if args.large and 100_000 not in args.sizes else args.sizes
    print(f"{'subjects':>9} {'ratio (median, min-max)':>24} {'timepoints/s':>13} "
          f"{'engine s':>9} {'load+dump s':>12} {'peak RSS MB':>12} {'engine +MB':>11} "
          f"{'vs I/O':>7}")
    rows = []
    for n in sizes:
        runs = []
        for _ in range(max(1, args.repeat)):
            child = [sys.executable, __file__, "--child", str(n)]
            done = subprocess.run(child + (["--to-file"] if args.to_file else []),
                                  capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout))
        ratios = [r["ratio"] for r in runs]
        row = {
            "subjects": n,
            "ratio": _median(ratios),
            "low": min(ratios),
            "high": max(ratios),
            "engine_s": _median([r["engine_s"] for r in runs]),
            "baseline_s": _median([r["baseline_s"] for r in runs]),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "engine_rss_mb": max(r["engine_rss_mb"] for r in runs),
            "io_ratio": _median([r["engine_s"] / r["io_floor_s"] for r in runs]),
        }
        rows.append(row)
        spread = f"{row['ratio']:.2f} ({row['low']:.2f}-{row['high']:.2f})"
        print(f"{n:>9} {spread:>24} {n * TIMEPOINTS / row['engine_s']:>13,.0f} "
              f"{row['engine_s']:>9.2f} {row['baseline_s']:>12.2f} {row['peak_rss_mb']:>12.0f} "
              f"{row['engine_rss_mb']:>11.0f} {row['io_ratio']:>7.2f}")
    first = rows[0]
    for row in rows[1:]:
        scale = (row["engine_s"] / row["subjects"]) / (first["engine_s"] / first["subjects"])
        print(f"linearity: engine time per subject at {row['subjects']} is {scale:.2f}x that "
              f"at {first['subjects']} (1.00 = linear; median times)")


if __name__ == "__main__":
    main()
