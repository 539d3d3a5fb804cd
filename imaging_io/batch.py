"""Measure and assess many studies on Dask: what ``recist batch`` does (issue 13).

A batch is a list of studies (:class:`StudyRow`: subject, timepoint, image series,
segmentation, optional date) read from a manifest (:func:`read_manifest`, CSV or JSON
Lines) or found in a folder laid out ``DIR/<subject>/<timepoint>/`` (:func:`discover`).

- Each study is measured by :func:`measure_row`, one Dask task per study, on the worker
  that reads it: the files never travel, only the small JSON of the measurement (exactly
  the ``recist measure`` JSON) comes back. ``workers=0`` measures in this process instead,
  one study after the other: the reference the Dask runs are compared with.
- Each subject's case is built from its starting case (``--cases``) or, without one, from
  the lesions of its first timepoint (:func:`lesions_from_baseline`), timepoint by
  timepoint with :func:`imaging_io.ingest.build_timepoint` — the matching and the values
  of ``recist ingest`` — and assessed with :func:`recist.jsonio.assess_json` once all its
  studies are done.
- Every finished study is appended to ``RESULTS/done.jsonl`` and flushed to disk
  (``fsync``) before anything else is written, so a batch killed at any moment (even
  ``kill -9``) resumes where it stopped: the same command measures only the studies that
  are not in it. The other outputs are derived from that journal and rewritten whole,
  sorted, at the start and at the end of a run, so a resumed batch ends with the files an
  uninterrupted one writes.

Outputs in ``RESULTS/``: ``measurements.jsonl`` (one line per lesion per study),
``cases.jsonl`` (the built cases: ``recist assess`` input), ``results.jsonl`` (one
``recist assess`` result per subject: every timepoint's responses, best overall
response, progression and PFS), ``summary.json`` (successes, refusals, failures, and the
subjects that could not be assessed, with the reason) and the journal ``done.jsonl``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import time
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from imaging_io.errors import ImagingInputError
from imaging_io.ingest import UNMATCHED_POLICIES, Finding, build_timepoint, with_volumes

COLUMNS = ("subject", "timepoint", "image", "seg", "date")
REQUIRED_COLUMNS = COLUMNS[:4]

JOURNAL = "done.jsonl"
MEASUREMENTS = "measurements.jsonl"
CASES = "cases.jsonl"
RESULTS = "results.jsonl"
SUMMARY = "summary.json"
LOCK = ".lock"

# Dask re-runs a task that raised this many times more (a transient error: a file system
# hiccup). A worker that dies while measuring is another matter: the scheduler gives the
# task to another worker, up to its `distributed.scheduler.allowed-failures` (3).
TASK_RETRIES = 1
# A local worker process runs one study at a time on one core: its libraries' own thread
# pools (ITK's filters, OpenMP/BLAS) are held to one thread, or two workers on two cores
# fight over four threads and the second worker adds little. Remote workers: start them
# with the same variables (README, "recist batch on a cluster").
WORKER_ENV = {"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1"}

# A lesion id of the form NT1, NT-2, nt_3 is a non-target by the usual naming of
# segmentation tracking ids (sample_dicom, the web app's rows).
NON_TARGET_ID = re.compile(r"^NT[-_]?\d+$", re.IGNORECASE)
SEGMENTATION_NAMES = ("SEG.dcm", "RTSTRUCT.dcm")  # in a discovered timepoint folder
# A NIfTI/NRRD/MetaImage file of a discovered timepoint folder whose name (without its
# suffix) is one of these words, or ends in one after ``_``, ``-`` or ``.``, is the label
# map (``labels.nii.gz``, ``CT_seg.nii.gz``, ``case-mask.nrrd``); another one is the image.
LABEL_MAP_WORDS = ("label", "labels", "labelmap", "seg", "segmentation", "mask")
ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MANIFEST_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")

Record = dict[str, Any]
Measure = Callable[[dict[str, str]], Record]


# --------------------------------------------------------------------------- the studies


@dataclass(frozen=True)
class StudyRow:
    """One study of a batch: a row of the manifest.

    ``image`` and ``seg`` are absolute paths (relative ones in a manifest are taken from
    the manifest's folder); ``date`` (``YYYY-MM-DD``) overrides the series' StudyDate;
    ``index`` is the row's position, which orders studies of the same day.
    """

    subject: str
    timepoint: str
    image: str
    seg: str
    date: str | None = None
    index: int = 0

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What makes a study the same study in a later run."""
        return (self.subject, self.timepoint, self.image, self.seg)

    def task(self) -> dict[str, str]:
        """What a worker needs to measure the study (and no more)."""
        return {"subject_id": self.subject, "timepoint": self.timepoint,
                "image": self.image, "seg": self.seg}


def _record_key(record: Record) -> tuple[str, str, str, str]:
    return (str(record.get("subject_id")), str(record.get("timepoint")),
            str(record.get("image")), str(record.get("seg")))


def read_manifest(path: str | Path) -> list[StudyRow]:
    """The studies a manifest lists: CSV with a header, or JSON Lines of objects.

    Columns (keys): ``subject``, ``timepoint``, ``image`` (series folder or file),
    ``seg`` (SEG, RTSTRUCT or label map) and optionally ``date``. A file named
    ``*.jsonl``/``*.ndjson``/``*.json``, or whose text starts with ``{``, is JSON Lines.

    Raises
    ------
    ImagingInputError
        Unreadable file, unknown or missing column, empty value, a date that is not
        ``YYYY-MM-DD``, the same subject and timepoint twice, or no study at all; the
        message names the line.
    """
    from recist.safejson import JsonInputError, loads

    source = Path(path)
    try:
        text = source.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ImagingInputError(source, f"cannot read the manifest ({exc.strerror or exc})") \
            from exc
    except UnicodeDecodeError as exc:
        raise ImagingInputError(source, f"the manifest is not UTF-8 ({exc.reason})") from exc
    entries: list[tuple[int, dict[str, Any]]] = []
    if source.suffix.lower() in _MANIFEST_JSON_SUFFIXES or text.lstrip().startswith("{"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = loads(line, source=f"{source} line {number}", line_number=number)
            except JsonInputError as exc:
                raise ImagingInputError(None, str(exc)) from exc
            if not isinstance(value, dict):
                raise ImagingInputError(source, f"line {number}: expected a JSON object "
                                        f"with keys {', '.join(COLUMNS)}")
            _check_columns(source, f"line {number}", value)
            entries.append((number, value))
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        _check_columns(source, "header", dict.fromkeys(reader.fieldnames or ()))
        for cells in reader:
            if None in cells:
                raise ImagingInputError(source, f"line {reader.line_num}: more cells than "
                                        "columns")
            entries.append((reader.line_num, cells))
    rows: list[StudyRow] = []
    seen: dict[tuple[str, str], int] = {}
    base = source.parent.absolute()
    for number, value in entries:
        row = _row(source, number, value, base, len(rows))
        first = seen.setdefault((row.subject, row.timepoint), number)
        if first != number:
            raise ImagingInputError(source, f"line {number}: subject {row.subject}, "
                                    f"timepoint {row.timepoint} is already on line {first}")
        rows.append(row)
    if not rows:
        raise ImagingInputError(source, "the manifest lists no study")
    return rows


def _check_columns(source: Path, where: str, value: dict[str, Any]) -> None:
    unknown = sorted(str(k) for k in value if k not in COLUMNS)
    missing = [c for c in REQUIRED_COLUMNS if c not in value]
    if unknown or missing:
        problem = (f"unknown column {', '.join(map(repr, unknown))}" if unknown
                   else f"no {', '.join(missing)} column")
        raise ImagingInputError(source, f"{where}: {problem}; the columns are subject, "
                                "timepoint, image, seg and optionally date")


def _row(source: Path, number: int, value: dict[str, Any], base: Path, index: int) -> StudyRow:
    cells: dict[str, str | None] = {}
    for column in COLUMNS:
        cell = value.get(column)
        if cell is not None and not isinstance(cell, str):
            raise ImagingInputError(source, f"line {number}: {column} must be a string, "
                                    f"not {json.dumps(cell)}")
        cells[column] = (cell or "").strip() or None
    for column in REQUIRED_COLUMNS:
        if cells[column] is None:
            raise ImagingInputError(source, f"line {number}: {column} is empty")
    day = cells["date"]
    if day is not None:
        try:
            if not ISO_DAY.match(day):
                raise ValueError(day)
            date.fromisoformat(day)
        except ValueError:
            raise ImagingInputError(source, f"line {number}: date {day!r} is not a date "
                                    "(YYYY-MM-DD)") from None
    return StudyRow(str(cells["subject"]), str(cells["timepoint"]),
                    str(base / str(cells["image"])), str(base / str(cells["seg"])), day,
                    index)


def discover(folder: str | Path) -> list[StudyRow]:
    """The studies of a folder laid out ``folder/<subject>/<timepoint>/``.

    In a timepoint folder (as ``sample_dicom/<visit>/``, or as ``recist pull`` writes one)
    the image series is its one sub-folder (else ``CT/``) and the segmentation
    ``SEG.dcm``, else ``RTSTRUCT.dcm``, else the folder's one file. A timepoint folder
    without sub-folder that holds a NIfTI/NRRD/MetaImage label map (named as
    :data:`LABEL_MAP_WORDS` says, e.g. ``labels.nii.gz``) and one other such file (the
    image, e.g. ``image.nii.gz``) is that image and its label map. A study
    whose files are not there is listed all the same: measuring it refuses it, naming the
    missing path, and the batch goes on. Hidden entries are skipped; subjects and
    timepoints are taken in name order (cases order timepoints by date).

    Raises
    ------
    ImagingInputError
        ``folder`` is not a folder or holds no timepoint folder.
    """
    root = Path(folder).absolute()
    if not root.is_dir():
        raise ImagingInputError(root, "is not a folder")
    rows: list[StudyRow] = []
    for subject in _visible(root, folders=True):
        for visit in _visible(subject, folders=True):
            series = _visible(visit, folders=True)
            files = _visible(visit, folders=False)
            image = series[0] if len(series) == 1 else visit / "CT"
            named = [visit / name for name in SEGMENTATION_NAMES if (visit / name).is_file()]
            seg = named[0] if named else files[0] if len(files) == 1 else visit / "SEG.dcm"
            pair = None if series or named else _label_map_pair(files)
            if pair is not None:
                image, seg = pair
            rows.append(StudyRow(subject.name, visit.name, str(image), str(seg),
                                 index=len(rows)))
    if not rows:
        raise ImagingInputError(root, "holds no <subject>/<timepoint>/ folder")
    return rows


def _label_map_pair(files: list[Path]) -> tuple[Path, Path] | None:
    """(image, label map) of a timepoint folder's NIfTI/NRRD/MetaImage files: one named
    as a label map (:data:`LABEL_MAP_WORDS`) and exactly one other; else ``None``."""
    from imaging_io.series import SITK_SUFFIXES, is_sitk_file

    def stem(path: Path) -> str:
        name = path.name.lower()
        return next(name[: -len(s)] for s in SITK_SUFFIXES if name.endswith(s))

    volumes = [f for f in files if is_sitk_file(f)]
    maps = [f for f in volumes if re.split(r"[_.-]", stem(f))[-1] in LABEL_MAP_WORDS]
    images = [f for f in volumes if f not in maps]
    if len(maps) == 1 and len(images) == 1:
        return images[0], maps[0]
    return None


def _visible(folder: Path, *, folders: bool) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if not p.name.startswith(".") and p.is_dir() == folders)


def read_start_cases(path: str | Path) -> dict[str, dict[str, Any]]:
    """Starting cases by subject id: one case, a JSON array or JSON Lines (as ``recist
    assess`` reads them), typically each with its baseline lesions and no timepoints.

    Raises
    ------
    ImagingInputError
        Unreadable file, a case that is not an object or has no ``subject_id``, or the
        same subject twice.
    """
    from recist.safejson import JsonInputError, parse_cases

    source = Path(path)
    try:
        cases = parse_cases(source.read_bytes(), str(source)).objects()
    except OSError as exc:
        raise ImagingInputError(source, f"cannot read the cases ({exc.strerror or exc})") \
            from exc
    except JsonInputError as exc:
        raise ImagingInputError(None, str(exc)) from exc
    out: dict[str, dict[str, Any]] = {}
    for number, case in enumerate(cases, start=1):
        subject = case.get("subject_id")
        if not isinstance(subject, str) or not subject:
            raise ImagingInputError(source, f"case #{number} has no subject_id")
        if subject in out:
            raise ImagingInputError(source, f"subject {subject} has two starting cases")
        out[subject] = case
    return out


# ------------------------------------------------------------------ on the worker: measure


def measure_row(task: dict[str, str]) -> Record:
    """Measure one study where it runs: the Dask task of a batch.

    Returns the task's fields plus ``status``: ``"ok"`` with ``measurement`` (the
    ``recist measure`` JSON of :func:`imaging_io.measure.measure_study`) and
    ``study_date``, or ``"refused"`` with ``reason`` (the :class:`ImagingInputError`'s
    line, naming the file). Anything else raised is a failure, which Dask may retry.
    """
    from imaging_io.measure import measure_study

    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # pydicom/highdicom warn about harmless quirks of real files, as in `measure`.
            warnings.simplefilter("ignore")
            result = measure_study(task["image"], task["seg"])
    except ImagingInputError as exc:
        return {**task, "status": "refused", "reason": str(exc),
                "seconds": round(time.perf_counter() - started, 4)}
    return {**task, "status": "ok", "study_date": result.info.study_date,
            "measurement": result.to_dict(),
            "seconds": round(time.perf_counter() - started, 4)}


def failed_record(row: StudyRow, exc: BaseException) -> Record:
    """The record of a study whose task raised (or whose workers died) instead of
    measuring or refusing it; a refusal raised by a custom ``measure`` stays a refusal."""
    if isinstance(exc, ImagingInputError):
        return {**row.task(), "status": "refused", "reason": str(exc)}
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:299] + "…"
    return {**row.task(), "status": "failed", "reason": f"{type(exc).__name__}: {text}"}


# ------------------------------------------------------------------------ the journal


class Journal:
    """``RESULTS/done.jsonl``: one JSON line per finished study, appended and flushed to
    disk (``fsync``) before the study counts as done.

    A write cut short by a crash can only leave a last line without its newline; it is cut
    off when the journal is opened again, so that line's study is measured again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def load(self) -> dict[tuple[str, str, str, str], Record]:
        """Every study's last record, after cutting off a torn last line.

        Raises
        ------
        ImagingInputError
            A complete line that is not a JSON record (the journal was edited).
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        end = data.rfind(b"\n") + 1
        if end != len(data):
            os.truncate(self.path, end)
            data = data[:end]
        records: dict[tuple[str, str, str, str], Record] = {}
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ImagingInputError(self.path, f"line {number} is not a JSON record "
                                        f"({exc}); remove that line to go on") from exc
            if not isinstance(record, dict) or "status" not in record:
                raise ImagingInputError(self.path, f"line {number} is not a study record; "
                                        "remove that line to go on")
            records[_record_key(record)] = record
        return records

    def append(self, record: Record) -> None:
        """Write one record and flush it to disk."""
        line = (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode()
        if self._fd is None:
            new = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if new:
                _fsync_folder(self.path.parent)
        os.write(self._fd, line)
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _rewrite(path: Path, lines: Iterable[str]) -> None:
    """Replace ``path`` by ``lines`` at once (a new file renamed over it)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


# ----------------------------------------------------------------- cases, built and assessed


def study_date(row: StudyRow, record: Record) -> str | None:
    """The timepoint's date: the manifest's, else the series' StudyDate."""
    return row.date or record.get("study_date")


def findings_of(measurement: dict[str, Any]) -> list[Finding]:
    """The ingest findings of a ``recist measure`` JSON (as
    :func:`imaging_io.ingest.findings_from_measurements` makes them from the result)."""
    return [
        Finding(key=le.get("tracking_id") or le["label"], label=le["label"],
                empty=le["voxel_count"] == 0,
                longest_diameter_mm=le["longest_diameter_mm"],
                short_axis_mm=le["short_axis_mm"], nodal=bool(le.get("nodal")),
                volume_ml=le.get("volume_ml") if le["voxel_count"] else None)
        for le in measurement["lesions"]
    ]


def lesions_from_baseline(measurement: dict[str, Any]) -> list[dict[str, Any]]:
    """The lesions of a case without a starting case: those of its first timepoint.

    One lesion per tracking id (else label; ``T1`` and ``T01`` are one, as
    :func:`imaging_io.matching.lesion_key` compares them), segments sharing one being the
    fragments of a split lesion (R-SPLIT); its ``site`` is the segment label and ``nodal`` the
    segment's. A lesion is a non-target when its id says so (``NT1``) or no segment of it
    is measurable (R-MEAS-1/2), else a target. The engine then checks the selection
    (R-SEL: at most 5 targets, 2 per organ) and reports its findings as warnings; a
    reader's selection is given with a starting case.
    """
    from imaging_io.matching import lesion_key

    lesions: dict[str, dict[str, Any]] = {}
    measurable: dict[str, bool] = defaultdict(bool)
    for le in measurement["lesions"]:
        lesion_id = str(le.get("tracking_id") or le["label"])
        key = lesion_key(lesion_id)  # T1 and T01 are one lesion, as ingest matches them
        lesions.setdefault(key, {"id": lesion_id, "site": le["label"],
                                 "nodal": bool(le.get("nodal"))})
        measurable[key] |= bool(le["measurable"])
    out = []
    for key, lesion in lesions.items():
        target = measurable[key] and not NON_TARGET_ID.match(lesion["id"])
        out.append({"id": lesion["id"], "site": lesion["site"],
                    "kind": "target" if target else "non-target", "nodal": lesion["nodal"]})
    return out


def build_case(subject: str, studies: Sequence[tuple[StudyRow, Record]],
               start: dict[str, Any] | None, *, unmatched: str = "refuse") -> dict[str, Any]:
    """The case of one subject: ``start`` (or its first timepoint's lesions) with one
    timepoint per measured study, in date order.

    Each timepoint is made as ``recist ingest`` makes it
    (:func:`imaging_io.ingest.build_timepoint`), and the first timepoint of a case gives
    lesions without ``modality``/``slice_thickness_mm`` the series' values (R-MEAS-1) and
    their segments' ``volume_ml`` (R-ELIG-VOLUME), as :func:`imaging_io.ingest.ingest_study`
    does.

    Raises
    ------
    ImagingInputError
        A study without a date, a timepoint already in the starting case, a finding that
        matches no lesion (``unmatched="refuse"``) or a target without its diameter.
    """
    ordered = sorted(studies, key=lambda s: (study_date(*s) or "", s[0].index))
    for row, record in ordered:
        if study_date(row, record) is None:
            raise ImagingInputError(row.image, f"timepoint {row.timepoint} has no StudyDate; "
                                    "give its date in the manifest")
    if start is None:
        case: dict[str, Any] = {"subject_id": subject, "lesions": lesions_from_baseline(
            ordered[0][1]["measurement"]), "timepoints": []}
    else:
        case = json.loads(json.dumps(start))
        case.setdefault("timepoints", [])
    for row, record in ordered:
        if any(tp.get("id") == row.timepoint for tp in case["timepoints"]):
            raise ImagingInputError(None, f"subject {subject}: timepoint {row.timepoint} is "
                                    "already in the starting case")
        measurement = record["measurement"]
        timepoint = build_timepoint(case, findings_of(measurement), timepoint_id=row.timepoint,
                                    date=str(study_date(row, record)), source=row.seg,
                                    unmatched=unmatched)
        case["timepoints"].append(timepoint)
        if len(case["timepoints"]) == 1:
            # The baseline's volumes, for a protocol's eligibility (R-ELIG-VOLUME).
            case["lesions"] = with_volumes(case, findings_of(measurement))
            image = measurement["image"]
            thickness = image.get("slice_thickness_mm")
            case["lesions"] = [
                {**le, **({} if "modality" in le or not image.get("modality")
                          else {"modality": image["modality"]}),
                 **({} if "slice_thickness_mm" in le or thickness is None
                    else {"slice_thickness_mm": round(thickness, 1)})}
                for le in case.get("lesions", [])
            ]
    return case


@dataclass
class SubjectOutcome:
    """A subject's case and result, or why it could not be assessed."""

    subject: str
    case: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    reason: str | None = None


def assess_subject(subject: str, studies: Sequence[tuple[StudyRow, Record]],
                   start: dict[str, Any] | None, *, unmatched: str = "refuse",
                   today: date | None = None) -> SubjectOutcome:
    """Build and assess a subject's case once all its studies are done; a subject with a
    study refused or failed is not assessed (a missing timepoint could hide a PD)."""
    from recist.errors import RecistError
    from recist.jsonio import assess_json

    missing = [(row, rec) for row, rec in studies if rec["status"] != "ok"]
    if missing:
        listed = ", ".join(f"{row.timepoint} {rec['status']}" for row, rec in missing)
        return SubjectOutcome(subject, reason=f"subject {subject}: not assessed, study "
                              f"{listed} (see refusals and failures)")
    try:
        case = build_case(subject, studies, start, unmatched=unmatched)
        result = assess_json(case, today=today)
    except ImagingInputError as exc:
        return SubjectOutcome(subject, reason=str(exc))
    except RecistError as exc:
        return SubjectOutcome(subject, reason=f"subject {subject}: the case is not valid: {exc}")
    except Exception as exc:  # noqa: BLE001 - one subject's bug must not end the batch
        what = " ".join(str(exc).split())[:200]
        return SubjectOutcome(subject, reason=f"subject {subject}: internal error "
                              f"({type(exc).__name__}: {what}); not assessed, please report it")
    return SubjectOutcome(subject, case=case, result=result)


# ---------------------------------------------------------------------------- progress


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """What a batch tells a person or a log while it runs, on ``stream`` (stderr).

    ``mode``: ``"bar"`` redraws one line (counts, rate, ETA) on a terminal; ``"log"``
    writes one line per finished study; ``"quiet"`` writes only refusals and failures.
    Every mode reports each refused or failed study with its paths and reason.
    """

    WIDTH = 24

    def __init__(self, stream: TextIO, mode: str = "log",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.mode, self.clock = stream, mode, clock
        self.total = self.done_before = 0
        self.counts: Counter[str] = Counter()
        self.started = 0.0
        self._drawn = 0.0

    def start(self, total: int, done_before: int) -> None:
        self.total, self.done_before = total, done_before
        self.started = self.clock()
        if self.mode != "quiet" and done_before:
            self._line(f"{done_before} of {total} studies done in an earlier run; skipped")
        self._draw(force=True)

    @property
    def finished(self) -> int:
        return self.done_before + sum(self.counts.values())

    def rate(self) -> float:
        elapsed = self.clock() - self.started
        measured = sum(self.counts.values())
        return measured / elapsed if elapsed > 0 and measured else 0.0

    def text(self) -> str:
        """The bar: ``  7/20 [########----------------]  35 %  ok 6  refused 1  failed 0
        2.1 studies/s  ETA 6s``."""
        fraction = self.finished / self.total if self.total else 1.0
        filled = round(self.WIDTH * fraction)
        rate = self.rate()
        left = self.total - self.finished
        eta = _duration(left / rate) if rate else "?"
        return (f"{self.finished:>{len(str(self.total))}}/{self.total} "
                f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] {fraction * 100:3.0f} %  "
                f"ok {self.counts['ok']}  refused {self.counts['refused']}  "
                f"failed {self.counts['failed']}  {rate:.2f} studies/s  ETA {eta}")

    def update(self, row: StudyRow, record: Record) -> None:
        status = record["status"]
        self.counts[status] += 1
        if status != "ok":
            where = "" if status == "refused" else f" (image {row.image}, seg {row.seg})"
            self._line(f"{status} {row.subject} {row.timepoint}{where}: {record['reason']}")
        elif self.mode == "log":
            self._line(f"[{self.finished}/{self.total}] ok {row.subject} {row.timepoint}")
        self._draw()

    def close(self) -> None:
        self._draw(force=True)
        if self.mode == "bar":
            self.stream.write("\n")
            self.stream.flush()

    def _line(self, text: str) -> None:
        if self.mode == "bar":
            self.stream.write("\r\x1b[K")
        self.stream.write(f"recist batch: {text}\n")
        self.stream.flush()
        self._drawn = 0.0

    def _draw(self, force: bool = False) -> None:
        if self.mode != "bar":
            return
        now = self.clock()
        if force or now - self._drawn >= 0.1 or self.finished == self.total:
            self.stream.write("\r\x1b[K" + self.text())
            self.stream.flush()
            self._drawn = now


# ---------------------------------------------------------------------------- the batch


def _lock(out: Path) -> int:
    import fcntl

    fd = os.open(out / LOCK, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ImagingInputError(out, "is in use by another recist batch (its lock is held)") \
            from None
    return fd


class _Batch:
    """The client side of one run: what is done, and the outputs derived from it."""

    def __init__(self, rows: Sequence[StudyRow], out: Path,
                 starts: dict[str, dict[str, Any]], unmatched: str,
                 today: date | None) -> None:
        self.rows, self.out, self.starts = list(rows), out, starts
        self.unmatched, self.today = unmatched, today
        self.records: dict[tuple[str, str, str, str], Record] = {}
        self.rows_of: dict[str, list[StudyRow]] = defaultdict(list)
        for row in self.rows:
            self.rows_of[row.subject].append(row)
        self.outcomes: dict[str, SubjectOutcome] = {}
        self.pending: Counter[str] = Counter()
        self.files: dict[str, TextIO] = {}

    # lines of the outputs, in their final order
    def measurement_lines(self, row: StudyRow, record: Record) -> Iterator[str]:
        if record["status"] != "ok":
            return
        head = {"subject_id": row.subject, "timepoint": row.timepoint,
                "date": study_date(row, record), "image": row.image, "seg": row.seg}
        for lesion in record["measurement"]["lesions"]:
            yield _dump({**head, **lesion})

    def _ordered(self) -> list[tuple[StudyRow, Record]]:
        done = [(row, self.records[row.key]) for row in self.rows if row.key in self.records]
        return sorted(done, key=lambda s: (s[0].subject, study_date(*s) or "", s[0].index))

    def rewrite(self) -> None:
        for handle in self.files.values():
            handle.close()
        subjects = sorted(self.outcomes)
        _rewrite(self.out / MEASUREMENTS,
                 (line for row, rec in self._ordered() for line in self.measurement_lines(row,
                                                                                          rec)))
        _rewrite(self.out / CASES, (_dump(self.outcomes[s].case) for s in subjects
                                    if self.outcomes[s].case is not None))
        _rewrite(self.out / RESULTS, (_dump(self.outcomes[s].result) for s in subjects
                                      if self.outcomes[s].result is not None))
        self.files = {name: (self.out / name).open("a", encoding="utf-8")
                      for name in (MEASUREMENTS, CASES, RESULTS)}

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
        self.files = {}

    def _write(self, name: str, lines: Iterable[str]) -> None:
        handle = self.files[name]
        for line in lines:
            handle.write(line + "\n")
        handle.flush()

    def settle(self, subject: str) -> SubjectOutcome:
        studies = [(row, self.records[row.key]) for row in self.rows_of[subject]]
        outcome = assess_subject(subject, studies, self.starts.get(subject),
                                 unmatched=self.unmatched, today=self.today)
        self.outcomes[subject] = outcome
        return outcome

    def finish(self, row: StudyRow, record: Record, stream: bool = True) -> None:
        self.records[row.key] = record
        self.pending[row.subject] -= 1
        if stream:
            self._write(MEASUREMENTS, self.measurement_lines(row, record))
        if self.pending[row.subject] == 0:
            outcome = self.settle(row.subject)
            if stream and outcome.case is not None:
                self._write(CASES, [_dump(outcome.case)])
                self._write(RESULTS, [_dump(outcome.result)])

    def summary(self, this_run: dict[str, Any]) -> dict[str, Any]:
        studies: dict[str, list[dict[str, Any]]] = {"ok": [], "refused": [], "failed": []}
        for row, record in self._ordered():
            item: dict[str, Any] = {"subject_id": row.subject, "timepoint": row.timepoint,
                                    "image": row.image, "seg": row.seg}
            if record["status"] == "ok":
                item["date"] = study_date(row, record)
                item["lesions"] = len(record["measurement"]["lesions"])
            else:
                item["reason"] = record["reason"]
            studies[record["status"]].append(item)
        not_assessed = [{"subject_id": s, "reason": o.reason}
                        for s, o in sorted(self.outcomes.items()) if o.result is None]
        return {
            "studies": len(self.rows), "measured": len(studies["ok"]),
            "refused": len(studies["refused"]), "failed": len(studies["failed"]),
            "subjects": len(self.rows_of), "assessed": len(self.outcomes) - len(not_assessed),
            "not_assessed": len(not_assessed),
            "successes": studies["ok"], "refusals": studies["refused"],
            "failures": studies["failed"], "subjects_not_assessed": not_assessed,
            "outputs": {"measurements": MEASUREMENTS, "cases": CASES, "results": RESULTS,
                        "journal": JOURNAL},
            "this_run": this_run,
        }


def run_batch(
    rows: Sequence[StudyRow],
    out: str | Path,
    *,
    start_cases: dict[str, dict[str, Any]] | None = None,
    workers: int = 2,
    scheduler: str | None = None,
    unmatched: str = "refuse",
    retry_refused: bool = False,
    progress: Progress | None = None,
    measure: Measure = measure_row,
    today: date | None = None,
) -> dict[str, Any]:
    """Measure every study of ``rows`` not yet done in ``out``, build and assess each
    subject's case, and write the outputs (module docstring).

    Parameters
    ----------
    rows
        The studies (:func:`read_manifest`, :func:`discover`).
    out
        The results folder; made if missing. A folder of an earlier run of the same
        studies is resumed: studies measured or refused there are not measured again.
    start_cases
        Starting case per subject id (:func:`read_start_cases`); a subject without one
        takes the lesions of its first timepoint (:func:`lesions_from_baseline`).
    workers
        Processes of the local Dask cluster (one thread each); 0 measures in this process.
    scheduler
        Address of a running Dask scheduler (``tcp://host:8786``) to use instead of a local
        cluster; its workers must reach the studies' paths and have this package.
    unmatched
        What ingest does with a segment that matches no lesion of the case: ``refuse``,
        ``new`` (a new lesion, R-NEW-1) or ``ignore``.
    retry_refused
        Measure again the studies an earlier run refused (after their files were fixed);
        failed studies are always measured again.
    progress
        Where to report (:class:`Progress`); ``None``: nowhere.
    measure
        The function a task runs per study (:func:`measure_row`); tests pass one that
        fails on purpose.
    today
        Dates after it are refused by the engine (R-PLAUS-DATE); default: today.

    Returns
    -------
    dict
        The summary written to ``summary.json``.

    Raises
    ------
    ImagingInputError
        ``out`` is in use by another batch, or its journal was damaged by hand.
    """
    if unmatched not in UNMATCHED_POLICIES:
        raise ImagingInputError(None, f"unmatched policy {unmatched!r} is not one of "
                                f"{', '.join(UNMATCHED_POLICIES)}")
    if workers < 0:
        raise ImagingInputError(None, f"workers must be 0 (in this process) or more, not "
                                f"{workers}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    lock = _lock(folder)
    journal = Journal(folder / JOURNAL)
    batch = _Batch(rows, folder, start_cases or {}, unmatched, today or date.today())
    try:
        earlier = journal.load()
        finished = {"ok", "refused"} if not retry_refused else {"ok"}
        todo = []
        for row in batch.rows:
            batch.pending[row.subject] += 1
        for row in batch.rows:
            record = earlier.get(row.key)
            if record is not None and record["status"] in finished:
                batch.finish(row, record, stream=False)
            else:
                todo.append(row)
        batch.rewrite()
        done_before = len(batch.rows) - len(todo)
        if progress is not None:
            progress.start(len(batch.rows), done_before)
        started = time.perf_counter()

        def finish(row: StudyRow, record: Record) -> None:
            journal.append(record)
            batch.finish(row, record)
            if progress is not None:
                progress.update(row, record)

        if not todo:
            executor = "nothing to measure"
        elif scheduler is None and workers == 0:
            executor = "in-process"
            for row in todo:
                try:
                    record = measure(row.task())
                except Exception as exc:  # noqa: BLE001 - one study's failure is reported
                    record = failed_record(row, exc)
                finish(row, record)
        else:
            executor = _run_on_dask(todo, measure, finish, workers=workers, scheduler=scheduler)
        seconds = time.perf_counter() - started
        if progress is not None:
            progress.close()
        batch.rewrite()
        summary = batch.summary({
            "executor": executor, "measured_now": len(todo), "skipped_done": done_before,
            "seconds": round(seconds, 3),
            "studies_per_second": round(len(todo) / seconds, 3) if todo and seconds else None,
        })
        _rewrite(folder / SUMMARY, [json.dumps(summary, ensure_ascii=False, indent=2)])
        return summary
    finally:
        batch.close()
        journal.close()
        os.close(lock)


def _run_on_dask(todo: Sequence[StudyRow], measure: Measure,
                 finish: Callable[[StudyRow, Record], None], *, workers: int,
                 scheduler: str | None) -> str:
    """Submit one task per study and take the results as they complete; returns what ran
    them. A local cluster is closed at the end; a remote one is left as it was."""
    import logging

    from distributed import Client, LocalCluster, as_completed

    # distributed's constructors carry no annotations; mypy 2 flags calling them.
    cluster = None
    if scheduler is not None:
        client = Client(scheduler)  # type: ignore[no-untyped-call]
        executor = f"Dask scheduler {scheduler}"
    else:
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR, env=WORKER_ENV)
        client = Client(cluster)  # type: ignore[no-untyped-call]
        executor = f"LocalCluster of {workers} worker processes"
    try:
        run = uuid.uuid4().hex[:8]
        futures = {
            client.submit(measure, row.task(), retries=TASK_RETRIES, pure=False,
                          key=f"recist-measure-{run}-{row.index}"): row
            for row in todo
        }
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            row = futures.pop(future)
            try:
                record = future.result()
            except Exception as exc:  # noqa: BLE001 - a failed study does not stop the batch
                record = failed_record(row, exc)
            future.release()
            finish(row, record)
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()
    return executor


def progress_mode(quiet: bool, stream: TextIO = sys.stderr) -> str:
    """``quiet`` for --quiet, a bar on a terminal, else one line per study (logs)."""
    if quiet:
        return "quiet"
    return "bar" if stream.isatty() else "log"
