"""Benchmark of the CDISC path: import-sdtm + assess + export-sdtm (issue 3).

Two data sets, each timed in the same run against a baseline of pandas merely reading the
same TU/TR/ADSL CSVs and writing them back (``read_csv`` + ``to_csv``), so the ratio says
what the import, the engine and the export add on top of the unavoidable CSV work:

- the large pharmaverse set (254 subjects × 3 readers, 56k TR records), if found;
- a synthetic SDTM set of 5,000 subjects (one investigator read each: 4 targets, one of
  them nodal, 2 non-targets, 7 visits, some NOT DONE, TOO SMALL and new lesions).

Prints subjects/s and reads/s of the pipeline and the ratio pipeline / pandas baseline.

    python benchmarks/bench_sdtm.py
    python benchmarks/bench_sdtm.py --subjects 20000
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cdisc_io.cases import assess_cases  # noqa: E402
from cdisc_io.csvio import read_domain, write_csv  # noqa: E402
from cdisc_io.dates import ImputationRule  # noqa: E402
from cdisc_io.sdtm_export import export_sdtm  # noqa: E402
from cdisc_io.sdtm_import import (  # noqa: E402
    TR_REQUIRED,
    TU_REQUIRED,
    build_cases,
    read_subjects,
)

TU_HEADER = ["STUDYID", "DOMAIN", "USUBJID", "TUSEQ", "TULNKID", "TUTESTCD", "TUORRES",
             "TUSTRESC", "TULOC", "TUEVAL", "TUEVALID", "TUACPTFL", "VISITNUM", "VISIT",
             "TUDTC"]  # fmt: skip
TR_HEADER = ["STUDYID", "DOMAIN", "USUBJID", "TRSEQ", "TRGRPID", "TRLNKID", "TRTESTCD",
             "TRORRES", "TRSTRESC", "TRSTRESN", "TRSTRESU", "TRSTAT", "TRREASND", "TREVAL",
             "TREVALID", "TRACPTFL", "VISITNUM", "VISIT", "TRDTC"]  # fmt: skip
SITES = ["LIVER", "LUNG", "ADRENAL GLAND", "LYMPH NODE"]


def write_synthetic(folder: Path, subjects: int, seed: int = 7) -> tuple[Path, Path, Path]:
    """A synthetic TU/TR/ADSL set; deterministic for a seed."""
    rng = random.Random(seed)
    tu_path, tr_path, adsl_path = folder / "tu.csv", folder / "tr.csv", folder / "adsl.csv"
    with tu_path.open("w", newline="") as tu_f, tr_path.open("w", newline="") as tr_f, \
            adsl_path.open("w", newline="") as adsl_f:  # fmt: skip
        tu, tr, adsl = csv.writer(tu_f), csv.writer(tr_f), csv.writer(adsl_f)
        tu.writerow(TU_HEADER)
        tr.writerow(TR_HEADER)
        adsl.writerow(["STUDYID", "USUBJID", "ARM", "RANDDT", "DTHDT", "LSTALVDT"])
        for n in range(subjects):
            sid = f"SYN-{n:06d}"
            start = date(2019, 1, 7) + timedelta(days=rng.randrange(700))
            died = rng.random() < 0.2
            adsl.writerow(["SYN", sid, rng.choice(["A", "B"]), start.isoformat(),
                           (start + timedelta(days=rng.randrange(60, 500))).isoformat()
                           if died else "", (start + timedelta(days=420)).isoformat()])  # fmt: skip
            tseq = rseq = 0
            lesions = [(f"T0{i + 1}", "TARGET", SITES[i]) for i in range(4)]
            lesions += [("NT01", "NON-TARGET", "BONE"), ("NT02", "NON-TARGET", "PLEURA")]
            for link, role, site in lesions:
                tseq += 1
                tu.writerow(["SYN", "TU", sid, tseq, link, "TUMIDENT", role, role, site,
                             "INVESTIGATOR", "", "", 1, "BASELINE", start.isoformat()])  # fmt: skip
            sizes = {f"T0{i + 1}": rng.uniform(12, 50) for i in range(4)}
            sizes["T04"] = rng.uniform(15, 30)
            trend = rng.choice([-0.12, -0.05, 0.0, 0.06])
            new_at = rng.randrange(2, 12)
            for visit in range(7):
                name = "BASELINE" if visit == 0 else f"WEEK {8 * visit}"
                day = (start + timedelta(days=56 * visit)).isoformat()
                if visit:
                    sizes = {k: max(0.0, v * (1 + trend + rng.uniform(-0.07, 0.07)))
                             for k, v in sizes.items()}  # fmt: skip
                for link, size in sizes.items():
                    nodal = link == "T04"
                    for test in ("LDIAM", "LPERP"):
                        rseq += 1
                        value = size * (1.15 if nodal and test == "LDIAM" else 1.0)
                        value = value if nodal or test == "LDIAM" else value * 0.8
                        if visit and rng.random() < 0.02:
                            row = ["", "", "", "", "NOT DONE", "IMAGE OBSCURED"]
                        elif visit and not nodal and size < 5:
                            row = ["TOO SMALL TO MEASURE", "TOO SMALL TO MEASURE", "", "", "",
                                   ""]  # fmt: skip
                        else:
                            text = f"{value:.1f}"
                            row = [text, text, text, "mm", "", ""]
                        tr.writerow(["SYN", "TR", sid, rseq, "TARGET", link, test, *row,
                                     "INVESTIGATOR", "", "", visit + 1, name, day])  # fmt: skip
                for link in ("NT01", "NT02"):
                    rseq += 1
                    state = "UNEQUIVOCAL" if visit and rng.random() < 0.02 else "PRESENT"
                    tr.writerow(["SYN", "TR", sid, rseq, "NON-TARGET", link, "TUMSTATE", state,
                                 state, "", "", "", "", "INVESTIGATOR", "", "", visit + 1,
                                 name, day])  # fmt: skip
                if visit == new_at:
                    tseq += 1
                    tu.writerow(["SYN", "TU", sid, tseq, "NEW01", "TUMIDENT", "NEW", "NEW",
                                 "LUNG", "INVESTIGATOR", "", "", visit + 1, name, day])  # fmt: skip
                    rseq += 1
                    tr.writerow(["SYN", "TR", sid, rseq, "NEW", "NEW01", "TUMSTATE",
                                 "UNEQUIVOCAL", "UNEQUIVOCAL", "", "", "", "", "INVESTIGATOR",
                                 "", "", visit + 1, name, day])  # fmt: skip
    return tu_path, tr_path, adsl_path


def pandas_baseline(paths: tuple[Path, Path, Path], out: Path) -> float:
    """Seconds for pandas to read the three CSVs as text and write them back."""
    t0 = time.perf_counter()
    for path in paths:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame.to_csv(out / f"copy_{path.name}", index=False)
    return time.perf_counter() - t0


def pipeline(paths: tuple[Path, Path, Path], out: Path) -> tuple[float, int, int]:
    """Seconds for import + assess + export-sdtm (with CSV I/O); subjects and reads."""
    tu_path, tr_path, adsl_path = paths
    t0 = time.perf_counter()
    subjects = read_subjects(read_domain(adsl_path, ["USUBJID"]), file=adsl_path.name,
                             kind="adsl", rule=ImputationRule.LAST, notices=[])  # fmt: skip
    result = build_cases(read_domain(tu_path, TU_REQUIRED), read_domain(tr_path, TR_REQUIRED),
                         subjects)  # fmt: skip
    assessed = assess_cases(result.cases)
    tu, tr, rs = export_sdtm(assessed)
    write_csv(tu, out / "tu.csv")
    write_csv(tr, out / "tr.csv")
    write_csv(rs, out / "rs.csv")
    elapsed = time.perf_counter() - t0
    return elapsed, len({c["subject_id"] for c in result.cases}), len(result.cases)


def report(label: str, paths: tuple[Path, Path, Path], work: Path) -> None:
    records = sum(1 for _ in paths[1].open()) - 1
    base = min(pandas_baseline(paths, work) for _ in range(2))
    elapsed, subjects, reads = pipeline(paths, work)
    print(f"{label}: {subjects} subjects, {reads} reads, {records} TR records")
    print(f"  pipeline (import + assess + export-sdtm): {elapsed:.2f} s, "
          f"{subjects / elapsed:.0f} subjects/s, {reads / elapsed:.0f} reads/s")  # fmt: skip
    print(f"  pandas read + write of the same CSVs:     {base:.2f} s")
    print(f"  ratio pipeline / pandas: {elapsed / base:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=5000)
    parser.add_argument("--pharmaverse", type=Path,
                        default=REPO.parent / "shared" / "testdata" / "pharmaverse")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pv = args.pharmaverse
        if (pv / "tr_onco.csv").is_file():
            report("pharmaverse large set",
                   (pv / "tu_onco.csv", pv / "tr_onco.csv", pv / "adsl.csv"), work)  # fmt: skip
        else:
            print(f"pharmaverse large set: not found at {pv}, skipped")
        synthetic = work / "synthetic"
        synthetic.mkdir()
        paths = write_synthetic(synthetic, args.subjects)
        report(f"synthetic {args.subjects} subjects", paths, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
