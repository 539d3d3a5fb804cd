"""A PACS over DICOMweb: find studies (QIDO-RS), retrieve them (WADO-RS), store files (STOW-RS).

A small typed layer over dicomweb-client, the imaging shell's only network code. It finds
a trial subject's studies, retrieves each one into a folder laid out like
``sample_dicom/<visit>`` (``CT/`` files, ``SEG.dcm``) that :func:`imaging_io.study.
measure_study_folder` measures, and stores DICOM files (a SEG, an SR) back on the PACS.
:func:`pull` is what ``recist pull`` does: every study not pulled yet, retrieved, measured
and recorded in a manifest, so that a second run skips it.

Faults of the PACS (nothing listening, a timeout, HTTP 5xx, a transfer that breaks off)
are retried a few times with exponential backoff; what still fails is one
:class:`DicomWebError` (an :class:`~imaging_io.errors.ImagingInputError`) naming the URL
and the study. Nothing is half-written: a study is retrieved into a hidden temporary
folder beside its destination and renamed into place only once complete and measured.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from dicomweb_client.api import DICOMwebClient

from imaging_io.errors import ImagingInputError

__all__ = [
    "MANIFEST",
    "MEASUREMENT",
    "DicomWebError",
    "FailedStudy",
    "Pacs",
    "PullReport",
    "PulledStudy",
    "RetryPolicy",
    "StoredInstance",
    "StudyRef",
    "VisitSchedule",
    "pull",
    "timepoint_id",
]

T = TypeVar("T")

# DICOM attributes as QIDO-RS names them in DICOM JSON (PS3.18 §F.2).
PATIENT_ID = "00100020"
STUDY_DATE = "00080020"
STUDY_INSTANCE_UID = "0020000D"
SERIES_INSTANCE_UID = "0020000E"
MODALITY = "00080060"
MODALITIES_IN_STUDY = "00080061"
SERIES_NUMBER = "00200011"
NUMBER_OF_SERIES_RELATED_INSTANCES = "00201209"
CLINICAL_TRIAL_SUBJECT_ID = "00120040"
CLINICAL_TRIAL_TIME_POINT_ID = "00120050"

# Series retrieved: the images lesions are measured on, and their annotations.
IMAGE_MODALITIES = ("CT", "MR")
ANNOTATION_MODALITIES = ("SEG", "RTSTRUCT", "SR")
# "*": the instances as the PACS stores them (PS3.18 §8.7.3.5.2), never transcoded by it.
AS_STORED = (("application/dicom", "*"),)
# HTTP statuses worth a retry: the server's faults and its "try again later".
TRANSIENT_STATUSES = frozenset({408, 429})
STORE_BATCH = 32  # instances per STOW-RS request

MANIFEST = "pull-manifest.json"  # in the pull folder: StudyInstanceUID -> what was pulled
MEASUREMENT = "measure.json"  # in each study folder: the `recist measure` JSON
_LOCK = ".pull.lock"
_STAGING_PREFIX = ".pull-"


# --- errors and retries -------------------------------------------------------------------


class DicomWebError(ImagingInputError):
    """The PACS could not be reached, or answered with something that is not what was asked.

    ``str()`` is one line: the URL, the study when there is one, what failed and, after
    retries, how many attempts were made.

    Attributes
    ----------
    url
        The DICOMweb base URL (without any user name or password it held).
    study_uid
        The StudyInstanceUID concerned, or ``None``.
    transient
        Whether the fault was of the kind that is retried (connection, timeout, 5xx).
    attempts
        How many attempts were made.
    """

    def __init__(self, url: str, message: str, *, study_uid: str | None = None,
                 transient: bool = False, attempts: int = 1) -> None:
        self.url = url
        self.study_uid = study_uid
        self.transient = transient
        self.attempts = attempts
        super().__init__(url, f"study {study_uid}: {message}" if study_uid else message)


@dataclass(frozen=True)
class RetryPolicy:
    """How transient faults are retried: ``attempts`` tries in all, the waits between them
    growing from ``first_delay_s`` by ``factor`` up to ``max_delay_s``.

    ``sleep`` is injectable so that tests count the waits instead of sleeping them.
    """

    attempts: int = 4
    first_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 8.0
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= 10:
            raise ValueError(f"retry attempts {self.attempts} is not between 1 and 10")
        if self.first_delay_s < 0 or self.max_delay_s < 0 or self.factor < 1:
            raise ValueError("retry delays must be ≥ 0 and the backoff factor ≥ 1")

    def delays(self) -> tuple[float, ...]:
        """The waits before the 2nd, 3rd… attempt."""
        return tuple(min(self.first_delay_s * self.factor**i, self.max_delay_s)
                     for i in range(self.attempts - 1))


class _PartialResponse(Exception):
    """A WADO-RS answer that is not the whole series, or not readable (retried)."""


class _InvalidResponse(Exception):
    """An answer that is whole but not what was asked for (not retried)."""


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's text (pydicom appends a traceback to some)."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def _refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # requests wraps urllib3, which wraps the socket's error
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _fault(exc: Exception, timeout_s: float) -> tuple[str, bool]:
    """What went wrong in one line, and whether it is worth another attempt."""
    if isinstance(exc, _PartialResponse | _InvalidResponse):
        return str(exc), isinstance(exc, _PartialResponse)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"no connection within {timeout_s:g} s (timeout)", True
    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer within {timeout_s:g} s (timeout)", True
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.
                  ContentDecodingError):
        return f"the response broke off before its end (partial transfer: {_one_line(exc)})", True
    if isinstance(exc, requests.exceptions.ConnectionError):
        if _refused(exc):
            return "cannot connect (connection refused: is the PACS running?)", True
        return f"cannot connect ({_one_line(exc)})", True
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        reason = exc.response.reason or ""
        return (f"HTTP {status} {reason}".strip(),
                status >= 500 or status in TRANSIENT_STATUSES)
    if isinstance(exc, requests.exceptions.InvalidJSONError | ValueError | EOFError):
        # dicomweb-client's multipart decoder and pydicom's reader say "invalid" this way
        return f"invalid response ({type(exc).__name__}: {_one_line(exc)})", False
    return f"failed ({type(exc).__name__}: {_one_line(exc)})", False


def _display_url(url: str) -> str:
    """The URL without user name or password, to be printed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # not a number: shown as given
        port = None
        host = parts.netloc.rpartition("@")[2]
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# --- what is found --------------------------------------------------------------------------


def _value(item: Mapping[str, Any], tag: str) -> str | None:
    """The first value of ``tag`` in a DICOM JSON object, as text (``None`` if absent)."""
    entry = item.get(tag)
    values = entry.get("Value") if isinstance(entry, Mapping) else None
    if not values:
        return None
    first = values[0]
    if isinstance(first, Mapping):  # a person name
        first = first.get("Alphabetic")
    text = str(first).strip() if first is not None else ""
    return text or None


def _dicom_date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return datetime.strptime(text.replace("-", "")[:8], "%Y%m%d").date()
    except ValueError:
        return None  # tolerant when reading: a malformed StudyDate counts as none


@dataclass(frozen=True)
class StudyRef:
    """A study as QIDO-RS describes it.

    Attributes
    ----------
    study_uid
        StudyInstanceUID.
    patient_id
        PatientID (the hospital's identifier; may be empty).
    study_date
        StudyDate, ``None`` when the PACS gave none (or an unreadable one).
    trial_subject_id
        Clinical Trial Subject ID (0012,0040), when the PACS gave it.
    trial_time_point_id
        Clinical Trial Time Point ID (0012,0050), when the PACS gave it.
    modalities
        ModalitiesInStudy.
    """

    study_uid: str
    patient_id: str = ""
    study_date: date | None = None
    trial_subject_id: str | None = None
    trial_time_point_id: str | None = None
    modalities: tuple[str, ...] = ()

    @property
    def subject(self) -> str:
        """The subject in the trial's words: the Clinical Trial Subject ID, else PatientID."""
        return self.trial_subject_id or self.patient_id

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> StudyRef:
        uid = _value(item, STUDY_INSTANCE_UID)
        if uid is None:
            raise ValueError("a QIDO-RS study result has no StudyInstanceUID")
        entry = item.get(MODALITIES_IN_STUDY)
        values = entry.get("Value") if isinstance(entry, Mapping) else None
        return cls(
            study_uid=uid,
            patient_id=_value(item, PATIENT_ID) or "",
            study_date=_dicom_date(_value(item, STUDY_DATE)),
            trial_subject_id=_value(item, CLINICAL_TRIAL_SUBJECT_ID),
            trial_time_point_id=_value(item, CLINICAL_TRIAL_TIME_POINT_ID),
            modalities=tuple(str(v) for v in values or ()),
        )


@dataclass(frozen=True)
class _SeriesRef:
    uid: str
    modality: str
    number: int
    count: int | None


@dataclass(frozen=True)
class StoredInstance:
    """One instance the PACS acknowledged (STOW-RS)."""

    path: Path
    sop_instance_uid: str
    sop_class: str
    modality: str
    study_uid: str


# --- timepoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VisitSchedule:
    """Planned visits of one subject: a study dated within ``window_days`` of a planned
    date belongs to that visit.

    Valid once built: ids are unique and not blank, and the windows do not overlap, so a
    study date matches at most one visit.
    """

    visits: tuple[tuple[str, date], ...]
    window_days: int = 7

    def __post_init__(self) -> None:
        if self.window_days < 0:
            raise ValueError(f"visit window {self.window_days} days is negative")
        ids = [visit for visit, _ in self.visits]
        if any(not visit.strip() for visit in ids):
            raise ValueError("a visit of the schedule has a blank id")
        if len(set(ids)) != len(ids):
            raise ValueError(f"visit ids are repeated in the schedule ({', '.join(ids)})")
        ordered = sorted(self.visits, key=lambda v: v[1])
        for (first, on), (second, then) in itertools.pairwise(ordered):
            if (then - on).days <= 2 * self.window_days:
                raise ValueError(
                    f"visits {first} ({on}) and {second} ({then}) are "
                    f"{(then - on).days} days apart: their ±{self.window_days}-day windows "
                    "overlap, so a study date between them would match both")
        object.__setattr__(self, "visits", tuple(ordered))

    @classmethod
    def from_mapping(cls, visits: Mapping[str, date], window_days: int = 7) -> VisitSchedule:
        return cls(tuple(visits.items()), window_days)

    def match(self, when: date) -> str | None:
        """The visit whose window holds ``when``, or ``None``."""
        for visit, planned in self.visits:
            if abs((when - planned).days) <= self.window_days:
                return visit
        return None


def timepoint_id(study: StudyRef, schedule: VisitSchedule | None = None,
                 *, header_time_point: str | None = None) -> str:
    """The timepoint a study belongs to.

    The Clinical Trial Time Point ID (0012,0050) when QIDO-RS or the retrieved headers
    (``header_time_point``) give one, else the visit of ``schedule`` whose window holds the
    study date, else the study date itself (ISO), else the StudyInstanceUID.
    """
    given = study.trial_time_point_id or (header_time_point or "").strip()
    if given:
        return given
    if study.study_date is not None:
        visit = schedule.match(study.study_date) if schedule is not None else None
        return visit or study.study_date.isoformat()
    return study.study_uid


# --- the client -----------------------------------------------------------------------------


class Pacs:
    """A DICOMweb service (QIDO-RS, WADO-RS, STOW-RS under one base URL).

    Parameters
    ----------
    url
        The base URL, e.g. ``http://pacs:8042/dicom-web`` (Orthanc's DICOMweb plugin).
    timeout_s
        Seconds to wait for a connection and then for each answer.
    retry
        How transient faults are retried (:class:`RetryPolicy`).
    session
        A :class:`requests.Session` to use (for authentication headers, certificates).

    Raises
    ------
    DicomWebError
        The URL is not an http(s) URL.
    """

    def __init__(self, url: str, *, timeout_s: float = 30.0, retry: RetryPolicy | None = None,
                 session: requests.Session | None = None) -> None:
        self.url = _display_url(url).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DicomWebError(self.url, "is not an http:// or https:// URL of a DICOMweb "
                                "service")
        if timeout_s <= 0:
            raise DicomWebError(self.url, f"timeout {timeout_s:g} s is not positive")
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        try:
            self._client = DICOMwebClient(url.rstrip("/"), session=session, timeout=timeout_s,
                                          permissive_uid=True)
        except ValueError as exc:
            raise DicomWebError(self.url, f"is not a usable DICOMweb URL ({exc})") from exc
        # Retries are ours (injectable sleep, counted, every transient fault, not only 503).
        self._client.set_http_retry_params(retry=False)

    def _call(self, what: str, call: Callable[[], T], study_uid: str | None = None) -> T:
        delays = self.retry.delays()
        attempt = 0
        while True:
            attempt += 1
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # pydicom quirks of the PACS's files
                    return call()
            except ImagingInputError:  # already one line (DicomWebError, a local disk fault)
                raise
            except Exception as exc:  # the boundary of the PACS: every fault becomes one line
                text, transient = _fault(exc, self.timeout_s)
                if transient and attempt <= len(delays):
                    self.retry.sleep(delays[attempt - 1])
                    continue
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise DicomWebError(self.url, f"{what}: {text}{tries}", study_uid=study_uid,
                                    transient=transient, attempts=attempt) from exc

    # --- QIDO-RS ------------------------------------------------------------------------

    def find_studies(self, subjects: Iterable[str] = (), *,
                     since: date | None = None) -> list[StudyRef]:
        """Studies of the given subjects (QIDO-RS), optionally dated ``since`` or later.

        A subject key matches the PatientID or the Clinical Trial Subject ID (0012,0040)
        exactly; both are queried, and the answers are checked here too (a PACS may treat
        ``*`` in a key as a wildcard, or ignore a filter it does not support). Without
        subjects, every study (since the date) is listed. Sorted by subject, date and UID.

        Raises
        ------
        DicomWebError
            The PACS cannot be reached or answers with an error, after the retries.
        """
        keys = list(dict.fromkeys(k for k in subjects if k))
        base = {STUDY_DATE: f"{since:%Y%m%d}-"} if since is not None else {}
        queries = [dict(base)] if not keys else [
            {**base, tag: key} for key in keys for tag in (PATIENT_ID, CLINICAL_TRIAL_SUBJECT_ID)
        ]
        fields = [PATIENT_ID, STUDY_DATE, MODALITIES_IN_STUDY, CLINICAL_TRIAL_SUBJECT_ID,
                  CLINICAL_TRIAL_TIME_POINT_ID]
        found: dict[str, StudyRef] = {}
        for query in queries:
            items = self._call("QIDO-RS search for studies", functools.partial(
                self._client.search_for_studies, search_filters=query, fields=fields,
                get_remaining=True))
            for item in items:
                try:
                    study = StudyRef.from_json(item)
                except ValueError as exc:
                    raise DicomWebError(self.url, f"QIDO-RS search for studies: invalid "
                                        f"response ({exc})") from exc
                if keys and study.patient_id not in keys and study.trial_subject_id not in keys:
                    continue
                if since is not None and (study.study_date is None or study.study_date < since):
                    continue
                found.setdefault(study.study_uid, study)
        return sorted(found.values(), key=lambda s: (s.subject, s.study_date or date.min,
                                                     s.study_uid))

    def _series_of(self, study_uid: str) -> list[_SeriesRef]:
        items = self._call("QIDO-RS search for series", lambda: self._client.search_for_series(
            study_uid, fields=[MODALITY, SERIES_NUMBER, NUMBER_OF_SERIES_RELATED_INSTANCES],
            get_remaining=True), study_uid)
        series = []
        for item in items:
            uid = _value(item, SERIES_INSTANCE_UID)
            if uid is None:
                raise DicomWebError(self.url, "QIDO-RS search for series: invalid response "
                                    "(a series without SeriesInstanceUID)", study_uid=study_uid)
            number = _value(item, SERIES_NUMBER)
            count = _value(item, NUMBER_OF_SERIES_RELATED_INSTANCES)
            series.append(_SeriesRef(
                uid, (_value(item, MODALITY) or "").upper(),
                int(number) if number and number.lstrip("-").isdigit() else 0,
                int(count) if count and count.isdigit() else None,
            ))
        return sorted(series, key=lambda s: (s.number, s.uid))

    # --- WADO-RS ------------------------------------------------------------------------

    def _fetch_series(self, study_uid: str, series: _SeriesRef, folder: Path) -> list[Path]:
        """Write every instance of one series into ``folder`` (created), named by SOP
        Instance UID; retried whole (the folder emptied) on a transient fault."""

        def attempt() -> list[Path]:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            written = []
            try:
                for ds in self._client.iter_series(study_uid, series.uid, media_types=AS_STORED):
                    written.append(self._write_instance(ds, study_uid, series, folder))
            except (requests.exceptions.RequestException, ImagingInputError, _InvalidResponse):
                raise
            except Exception as exc:  # the multipart decoder or pydicom on a broken answer
                raise _PartialResponse(f"invalid or partial multipart response "
                                       f"({type(exc).__name__}: {_one_line(exc)})") from exc
            if not written or (series.count is not None and len(written) < series.count):
                raise _PartialResponse(
                    f"retrieved {len(written)} of the {series.count or 'expected'} instances of "
                    f"series {series.uid} (partial response)")
            _check_files(written)
            return written

        return self._call(f"WADO-RS retrieve of series {series.uid}", attempt, study_uid)

    @staticmethod
    def _write_instance(ds: Any, study_uid: str, series: _SeriesRef, folder: Path) -> Path:
        got = (str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")))
        if got != (study_uid, series.uid):
            raise _InvalidResponse(f"WADO-RS returned an instance of series {got[1]} of study "
                                   f"{got[0]}, not one of series {series.uid}")
        sop = str(ds.get("SOPInstanceUID", "")).strip()
        if not re.fullmatch(r"[0-9][0-9.]*", sop):
            raise _InvalidResponse(f"an instance of series {series.uid} has no usable "
                                   f"SOPInstanceUID ({sop!r})")
        path = folder / f"{sop}.dcm"
        try:
            ds.save_as(path, enforce_file_format=True)
        except OSError as exc:  # this computer's disk, not the PACS
            raise ImagingInputError(folder, f"cannot write a retrieved instance "
                                    f"({exc.strerror or exc})") from exc
        return path

    def download_study(self, study_uid: str, folder: str | Path, *,
                       segmented_only: bool = False) -> Path:
        """Write a study into ``folder`` (created; must not exist), laid out like
        ``sample_dicom/<visit>``: the image series in ``CT/`` (``MR/``; ``CT-2/``… when the
        segmentations reference several), files ``CT0000.dcm``… in InstanceNumber order,
        and the annotations as ``SEG.dcm``, ``RTSTRUCT.dcm``, ``SR.dcm`` (``SEG-2.dcm``…).

        Only the image series that the SEG/RTSTRUCT reference are retrieved (all CT/MR
        series when none does). Not atomic: :meth:`retrieve_study` is.

        Raises
        ------
        DicomWebError
            The study has no CT or MR series (or, with ``segmented_only``, no SEG or
            RTSTRUCT: nothing is retrieved), or a retrieval failed after the retries.
        """
        from imaging_io.series import read_dicom_header
        from imaging_io.study import _referenced_series

        root = Path(folder)
        root.mkdir(parents=True)
        series = self._series_of(study_uid)
        images = [s for s in series if s.modality in IMAGE_MODALITIES]
        if not images:
            found = ", ".join(sorted({s.modality or "?" for s in series})) or "no series"
            raise DicomWebError(self.url, f"has no CT or MR series to measure on ({found})",
                                study_uid=study_uid)
        if segmented_only and not any(s.modality in ("SEG", "RTSTRUCT") for s in series):
            found = ", ".join(sorted({s.modality or "?" for s in series}))
            raise DicomWebError(self.url, f"has no SEG or RTSTRUCT series to measure yet "
                                f"({found})", study_uid=study_uid)
        referenced: set[str] = set()
        counters: dict[str, int] = {}
        for s in (s for s in series if s.modality in ANNOTATION_MODALITIES):
            for path in self._fetch_series(study_uid, s, root / f".{s.uid}"):
                ds = read_dicom_header(path)
                referenced |= _referenced_series(ds) if ds is not None else set()
                counters[s.modality] = counters.get(s.modality, 0) + 1
                n = counters[s.modality]
                path.rename(root / (f"{s.modality}.dcm" if n == 1 else f"{s.modality}-{n}.dcm"))
            (root / f".{s.uid}").rmdir()
        chosen = [s for s in images if s.uid in referenced] or images
        for s in chosen:
            counters[s.modality] = counters.get(s.modality, 0) + 1
            n = counters[s.modality]
            target = root / (s.modality if n == 1 else f"{s.modality}-{n}")
            files = self._fetch_series(study_uid, s, target)
            for i, path in enumerate(sorted(files, key=_instance_order)):
                path.rename(target / f"{s.modality}{i:04d}.dcm")
        return root

    def retrieve_study(self, study_uid: str, dest: str | Path) -> Path:
        """:meth:`download_study` into ``dest`` atomically: retrieved into a hidden
        temporary folder beside it, renamed to ``dest`` only once complete.

        Raises
        ------
        DicomWebError
            As :meth:`download_study`.
        ImagingInputError
            ``dest`` already exists.
        """
        dest = Path(dest)
        if dest.exists():
            raise ImagingInputError(dest, "already exists; a study is never retrieved over "
                                    "another folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _staging(dest.parent) as staging:
            self.download_study(study_uid, staging / "study")
            (staging / "study").rename(dest)
        return dest

    # --- STOW-RS ------------------------------------------------------------------------

    def store(self, paths: Sequence[str | Path]) -> list[StoredInstance]:
        """Store DICOM files on the PACS (STOW-RS), a few dozen per request.

        Raises
        ------
        ImagingInputError
            A file is not readable DICOM (nothing is sent).
        DicomWebError
            The PACS refused an instance, or could not be reached after the retries.
        """
        import pydicom

        from imaging_io.errors import refusing
        from imaging_io.series import read_dicom_header

        files = [Path(p) for p in paths]
        for path in files:  # every file checked before anything is sent
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = read_dicom_header(path)  # refuses truncated pixel data, naming it
            if header is None:
                raise ImagingInputError(path, "is not a DICOM file")
            if "SOPInstanceUID" not in header or "StudyInstanceUID" not in header:
                raise ImagingInputError(path, "has no SOPInstanceUID or StudyInstanceUID to "
                                        "store it under")
        stored: list[StoredInstance] = []
        for start in range(0, len(files), STORE_BATCH):
            batch = files[start:start + STORE_BATCH]
            datasets = []
            for path in batch:
                with refusing(path, "is not a readable DICOM file"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    datasets.append(pydicom.dcmread(path, force=True))
            by_uid = {str(ds.SOPInstanceUID): (path, ds) for path, ds in zip(batch, datasets,
                                                                          strict=True)}
            answer = self._call("STOW-RS store",
                                functools.partial(self._client.store_instances, datasets))
            failed = [(str(item.get("ReferencedSOPInstanceUID", "?")),
                       item.get("FailureReason")) for item in answer.get("FailedSOPSequence", [])]
            if failed:
                uid, reason = failed[0]
                where = by_uid[uid][0] if uid in by_uid else uid
                code = f"0x{int(reason):04X}" if reason is not None else "unknown"
                raise DicomWebError(self.url, f"STOW-RS refused {len(failed)} instance(s), "
                                    f"first {where} (failure reason {code})",
                                    study_uid=str(by_uid[uid][1].StudyInstanceUID)
                                    if uid in by_uid else None)
            acknowledged = {str(item.get("ReferencedSOPInstanceUID", ""))
                            for item in answer.get("ReferencedSOPSequence", [])}
            for uid, (path, ds) in by_uid.items():
                if acknowledged and uid not in acknowledged:
                    raise DicomWebError(self.url, f"STOW-RS did not acknowledge {path} "
                                        f"(SOP Instance {uid})",
                                        study_uid=str(ds.StudyInstanceUID))
                stored.append(StoredInstance(
                    path, uid, getattr(ds.SOPClassUID, "name", str(ds.SOPClassUID)),
                    str(ds.get("Modality", "")), str(ds.StudyInstanceUID)))
        return stored


def _instance_order(path: Path) -> tuple[int, str]:
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["InstanceNumber"])
    number = str(ds.get("InstanceNumber", "") or "")
    return (int(number) if number.lstrip("-").isdigit() else 0, path.name)


def _check_files(paths: Iterable[Path]) -> None:
    """Refuse a retrieved instance whose pixel data is shorter than its header says (the
    last part of a multipart answer that broke off may still parse)."""
    from imaging_io.series import read_dicom_header

    for path in paths:
        try:
            read_dicom_header(path)
        except ImagingInputError as exc:
            raise _PartialResponse(f"instance {path.stem} is damaged or truncated "
                                   f"({exc.message})") from exc


@contextlib.contextmanager
def _staging(parent: Path) -> Iterator[Path]:
    """A hidden temporary folder in ``parent`` (so a rename out of it is atomic), removed
    with whatever is left in it."""
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- recist pull ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PulledStudy:
    """A study retrieved, measured and recorded."""

    study: StudyRef
    timepoint: str
    folder: Path
    measurement: Path


@dataclass(frozen=True)
class FailedStudy:
    """A study that could not be pulled; nothing of it was left in the pull folder."""

    study: StudyRef
    message: str


@dataclass(frozen=True)
class PullReport:
    """What :func:`pull` did."""

    pulled: tuple[PulledStudy, ...]
    skipped: tuple[StudyRef, ...]
    failed: tuple[FailedStudy, ...]

    def summary(self) -> str:
        return (f"pulled {len(self.pulled)}, skipped {len(self.skipped)}, "
                f"failed {len(self.failed)}")


def _folder_name(text: str) -> str:
    """``text`` as one safe folder name (no separators, no leading dot)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip()).lstrip(".")
    return name or "_"


def _measure(folder: Path) -> dict[str, Any]:
    from imaging_io.study import measure_study_folder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return measure_study_folder(folder).to_dict()


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"format": 1, "studies": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImagingInputError(path, f"is not a readable pull manifest ({_one_line(exc)})"
                                ) from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("studies"), dict):
        raise ImagingInputError(path, 'is not a pull manifest (no "studies" object)')
    return manifest


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file beside it, then renamed)."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, ensure_ascii=False)
            out.write("\n")
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    import fcntl

    with open(out_dir / _LOCK, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise ImagingInputError(out_dir, "another recist pull is writing into this "
                                    "folder") from exc
        yield


def pull(pacs: Pacs, out_dir: str | Path, *, subjects: Iterable[str] = (),
         since: date | None = None, schedule: VisitSchedule | None = None,
         measure: Callable[[Path], Mapping[str, Any]] = _measure) -> PullReport:
    """Retrieve and measure every study not pulled yet (what ``recist pull`` does).

    Each study found (:meth:`Pacs.find_studies`) whose StudyInstanceUID the manifest
    ``out_dir/pull-manifest.json`` does not record (or whose recorded folder is gone) is
    retrieved into a hidden temporary folder, measured there
    (:func:`imaging_io.study.measure_study_folder`, written as ``measure.json``), then
    renamed to ``out_dir/<subject>/<timepoint>/`` (:func:`timepoint_id`) and recorded.
    A study that fails leaves nothing behind and is reported; the others go on.

    Raises
    ------
    DicomWebError
        The studies could not be listed (PACS unreachable, after the retries).
    ImagingInputError
        ``out_dir`` is not a folder, its manifest is unreadable, or another pull is
        writing into it.
    """
    out = Path(out_dir)
    studies = pacs.find_studies(subjects, since=since)
    if out.exists() and not out.is_dir():
        raise ImagingInputError(out, "is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    pulled: list[PulledStudy] = []
    skipped: list[StudyRef] = []
    failed: list[FailedStudy] = []
    with _locked(out):
        for stale in out.glob(f"{_STAGING_PREFIX}*"):  # left by a pull that was killed
            shutil.rmtree(stale, ignore_errors=True)
        manifest_path = out / MANIFEST
        manifest = _read_manifest(manifest_path)
        records: dict[str, Any] = manifest["studies"]
        for study in studies:
            known = records.get(study.study_uid)
            if isinstance(known, dict) and (out / str(known.get("folder", ""))).is_dir():
                skipped.append(study)
                continue
            try:
                done = _pull_one(pacs, out, study, schedule, measure)
            except ImagingInputError as exc:  # DicomWebError included
                failed.append(FailedStudy(study, str(exc)))
                continue
            pulled.append(done)
            records[study.study_uid] = {
                "subject": study.subject,
                "patient_id": study.patient_id,
                "study_date": study.study_date.isoformat() if study.study_date else None,
                "timepoint": done.timepoint,
                "folder": done.folder.relative_to(out).as_posix(),
                "measurement": done.measurement.relative_to(out).as_posix(),
                "source": pacs.url,
                "pulled_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            _write_json(manifest_path, manifest)  # after each study: a crash loses none
    return PullReport(tuple(pulled), tuple(skipped), tuple(failed))


def _pull_one(pacs: Pacs, out: Path, study: StudyRef, schedule: VisitSchedule | None,
              measure: Callable[[Path], Mapping[str, Any]]) -> PulledStudy:
    import pydicom

    with _staging(out) as staging:
        folder = pacs.download_study(study.study_uid, staging / "study", segmented_only=True)
        header_time_point = None
        if not study.trial_time_point_id:  # the PACS may not index (0012,0050): read it
            first = next(iter(sorted(folder.glob("*/*.dcm"))), None)
            if first is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = pydicom.dcmread(first, stop_before_pixels=True)
                header_time_point = str(ds.get("ClinicalTrialTimePointID", "") or "") or None
        timepoint = timepoint_id(study, schedule, header_time_point=header_time_point)
        dest = out / _folder_name(study.subject) / _folder_name(timepoint)
        if dest.exists():
            raise DicomWebError(pacs.url, f"subject {study.subject}, timepoint {timepoint}: "
                                f"{dest} already holds another study; give the studies a "
                                "Clinical Trial Time Point ID or a visit schedule that tells "
                                "them apart", study_uid=study.study_uid)
        try:
            result = measure(folder)
        except Exception as exc:  # a reader's refusal or quirk: this study fails, not the pull
            why = exc.message if isinstance(exc, ImagingInputError) else (
                f"{type(exc).__name__}: {_one_line(exc)}")
            raise DicomWebError(pacs.url, f"subject {study.subject}, timepoint {timepoint}: "
                                f"cannot be measured: {why}", study_uid=study.study_uid) from exc
        _write_json(folder / MEASUREMENT, result)
        dest.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(dest)
    return PulledStudy(study, timepoint, dest, dest / MEASUREMENT)
