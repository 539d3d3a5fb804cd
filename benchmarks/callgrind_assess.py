"""CPU instructions of the batch path of `recist assess` against load+dump, by callgrind.

Wall-clock ratios move with the load of a shared machine; instruction counts do not. This
runs the same work as ``bench_assess.py`` (N synthetic subjects as JSON Lines) under
``valgrind --tool=callgrind`` three times: setup only, setup + load+dump, setup + engine;
subtracting the setup gives each side's instructions and their ratio. Instructions are
not time (C code such as the json module does more per cycle than the interpreter), so
this is for comparing one version of the engine with another, not for the 3x target.

    python benchmarks/callgrind_assess.py            # 200 subjects
    python benchmarks/callgrind_assess.py --subjects 500
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_assess import synthetic_case


def child(mode: str, n: int) -> None:
    from recist.cli_assess import assess_batch, read_cases, write_results

    rng = random.Random(20261126 + n)
    text = "".join(json.dumps(synthetic_case(rng, i)) + "\n" for i in range(n))
    if mode == "baseline":
        out = io.StringIO()
        for line in text.splitlines():
            out.write(json.dumps(json.loads(line)) + "\n")
    elif mode == "engine":
        form, cases = read_cases(text, "synthetic")
        errors: list[str] = []
        rendered = assess_batch(cases, form, "json", False, errors)
        write_results(form, rendered, "json", io.StringIO())
        assert not errors, errors[:3]


def instructions(mode: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--child",
                mode,
                "--subjects",
                str(n),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise SystemExit(f"callgrind gave no count:\n{done.stderr[-2000:]}")
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--child", choices=("setup", "baseline", "engine"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.subjects)
        return
    setup = instructions("setup", args.subjects)
    baseline = instructions("baseline", args.subjects) - setup
    engine = instructions("engine", args.subjects) - setup
    print(
        f"subjects {args.subjects}: load+dump {baseline:,} instructions, engine "
        f"{engine:,} ({engine / args.subjects:,.0f} per subject), ratio {engine / baseline:.2f}"
    )


if __name__ == "__main__":
    main()
