"""Reconciliation: the audit trail replayed, and the rows checked against it.

The chain (:mod:`web.services.audit`) proves the trail was not changed; this proves the
*data* was not changed behind the trail's back. :func:`reconcile` reads the trail in
``seq`` order and rebuilds what it says the data is:

* every measurement (``TRIAL/S/TP/LESION``, fields ``targets`` / ``non_targets``, values
  in the contract's canonical JSON), following timepoint renames (field ``id``, or
  ``code`` for the baseline), deleted timepoints and deleted baseline lesions; an imported
  case is one ``subject`` record holding the whole case as stored (field ``case``);
* every timepoint's lock state (``lock`` / ``unlock`` records) and its live signature
  (the newest ``sign`` record not withdrawn by an ``unlock``), with the SHA-256 of what
  was signed (:mod:`web.services.signing`);
* every subject's arm and dates (randomisation, death, new therapy), which PFS and the
  arms' comparison read;
* every subject's progression-call review (agreed, queried, answered, overridden: who,
  what and why, in order);
* every trial's protocol settings (what every assessment is made under) and its
  independent-central-review setting;
* every blinded central read's signature (reader and the SHA-256 of the read as signed,
  ``TRIAL/S/readN``), whether it is the accepted read, and every adjudication (who
  accepted which read).

Then it compares the rows with that: each stored measurement (``LesionRecord``) with the
trail's value, each lock state, each signature (signer, meaning, and the digest of the
values stored now), each trial's setting, and each subject's cached result with a fresh
engine run (``engine_assess(build_case(subject))``), and each central read (its reader, its
digest, its accepted flag and its result, a fresh engine run of the read as stored) and
adjudication, and each progression-call review, with the trail's
(:mod:`web.services.audit_review`). The first difference is named;
nothing is written. Scan dates and new lesions are not reconciled (the trail does not
record them on creation); a signed read's new lesions are covered by its digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, joinedload, selectinload

from web.errors import InvalidInput
from web.models import (
    AuditRecord,
    LesionRecord,
    Subject,
    Timepoint,
    Trial,
)
from web.services.cases import build_case, engine_assess, ordered_timepoints, stored_target
from web.services.signing import SignRecord, content_digest, parse_signature
from web.services.subjects import SUBJECT_FIELDS

GROUPS = ("targets", "non_targets")


def _value(text: str | None) -> Any:
    """A value as the trail writes it (``Audit``: text as is, anything else as JSON)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _shown(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists…), for comparison."""
    return json.loads(json.dumps(value, sort_keys=True))


@dataclass
class Signature:
    """A live signature in the trail: who (user name), what the record says, where."""

    username: str
    record: SignRecord | None
    seq: int


@dataclass
class Replay:
    """What the trail says the data is, after the records applied so far."""

    values: dict[str, tuple[str, Any, int]] = field(default_factory=dict)
    locks: dict[str, tuple[bool, int]] = field(default_factory=dict)
    signatures: dict[str, Signature] = field(default_factory=dict)
    central: dict[str, tuple[bool, int]] = field(default_factory=dict)
    settings: dict[str, tuple[Any, int]] = field(default_factory=dict)
    # Each subject's arm and dates: field -> (the value as the trail writes it, seq).
    subject_fields: dict[str, dict[str, tuple[str | None, int]]] = field(default_factory=dict)
    # Each subject's progression-call reviews, in order: (user, action, old, new, why, seq).
    reviews: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    # Central review: each read's signature, the reads accepted, each adjudication.
    reads: dict[str, Signature] = field(default_factory=dict)
    accepted: dict[str, tuple[bool, int]] = field(default_factory=dict)
    adjudications: dict[str, tuple[str, str | None, int, str | None]] = field(
        default_factory=dict
    )

    def apply(self, row: Any) -> None:
        entity, action, key, name = row.entity, row.action, row.entity_key, row.field
        if entity == "measurement":
            if action == "delete":
                self.values.pop(key, None)
            elif name in GROUPS:
                self.values[key] = (name, _value(row.new), row.seq)
        elif entity == "timepoint":
            self._timepoint(row, action, key, name)
        elif entity == "lesion" and action == "delete":
            trial, subject, lesion = [*key.split("/"), "", "", ""][:3]
            for k in [k for k in self.values if _is_lesion(k, trial, subject, lesion)]:
                del self.values[k]
        elif entity == "subject" and name == "case" and action == "create":
            self._imported(key, _value(row.new), row.seq)
        elif entity == "subject" and name in SUBJECT_FIELDS and action in ("create", "update"):
            self.subject_fields.setdefault(key, {})[name] = (row.new, row.seq)
        elif entity == "trial" and name == "settings":
            self.settings[key] = (_value(row.new), row.seq)
        elif entity == "trial" and name == "central_review":
            self.central[key] = (row.new == "true", row.seq)
        elif entity == "progression" and action in ("review", "override"):
            event = (row.username, name, row.old, row.new, row.reason or None, row.seq)
            self.reviews.setdefault(key, []).append(event)
        elif entity == "central_read" and action == "sign" and name == "signature":
            self.reads[key] = Signature(row.username, parse_signature(row.new), row.seq)
        elif entity == "central_read" and name == "accepted":
            self.accepted[key] = (row.new == "true", row.seq)
        elif entity == "adjudication" and action == "adjudicate" and name == "accepted":
            self.adjudications[key] = (row.username, row.new, row.seq, row.reason)
            self.accepted[f"{key}/{(row.new or '').replace(' ', '')}"] = (True, row.seq)

    def _timepoint(self, row: Any, action: str, key: str, name: str | None) -> None:
        if action == "delete":
            self._drop(key)
        elif action == "update" and name in ("id", "code") and row.new and row.old != row.new:
            self._move(key, key.rsplit("/", 1)[0] + "/" + row.new)
        elif name == "locked" and action in ("lock", "unlock"):
            self.locks[key] = (row.new == "true", row.seq)
        elif action == "sign" and name == "signature":
            self.signatures[key] = Signature(row.username, parse_signature(row.new), row.seq)
        elif action == "unlock" and name == "signature":
            self.signatures.pop(key, None)

    def _drop(self, prefix: str) -> None:
        for k in [k for k in self.values if k.startswith(prefix + "/")]:
            del self.values[k]
        self.locks.pop(prefix, None)
        self.signatures.pop(prefix, None)

    def _move(self, old: str, new: str) -> None:
        for k in [k for k in self.values if k.startswith(old + "/")]:
            self.values[new + k[len(old) :]] = self.values.pop(k)
        if old in self.locks:
            self.locks[new] = self.locks.pop(old)
        if old in self.signatures:
            self.signatures[new] = self.signatures.pop(old)

    def _imported(self, key: str, case: Any, seq: int) -> None:
        for k in [k for k in self.values if k.startswith(key + "/")]:
            del self.values[k]
        if not isinstance(case, dict):
            return
        self.subject_fields[key] = {
            name: (value if isinstance(value := case.get(name), str) else None, seq)
            for name in SUBJECT_FIELDS
        }
        for tp in case.get("timepoints") or []:
            for group in GROUPS:
                for code, value in (tp.get(group) or {}).items():
                    self.values[f"{key}/{tp['id']}/{code}"] = (group, value, seq)


def _is_lesion(key: str, trial: str, subject: str, lesion: str) -> bool:
    parts = key.split("/")
    return len(parts) == 4 and (parts[0], parts[1], parts[3]) == (trial, subject, lesion)


def replay(connection: Connection, *, batch: int = 2000) -> Replay:
    """The whole trail applied in ``seq`` order."""
    state = Replay()
    last = 0
    while True:
        rows = connection.execute(
            select(AuditRecord.__table__)
            .where(AuditRecord.seq > last)
            .order_by(AuditRecord.seq)
            .limit(batch)
        ).all()
        if not rows:
            return state
        for row in rows:
            state.apply(row)
            last = row.seq


@dataclass(frozen=True)
class ReconcileReport:
    """The outcome of :func:`reconcile`: what was compared and every difference found,
    in the order subjects, their timepoints and lesions are listed."""

    subjects: int
    measurements: int
    signatures: int
    differences: tuple[str, ...] = ()
    central_reads: int = 0

    @property
    def agree(self) -> bool:
        return not self.differences

    @property
    def problem(self) -> str | None:
        return self.differences[0] if self.differences else None


def first_difference(cached: Any, fresh: Any, path: str = "") -> str:
    """Where two JSON values first differ, as ``path: cached X, engine Y``."""
    if isinstance(cached, dict) and isinstance(fresh, dict):
        for k in sorted(set(cached) | set(fresh)):
            if cached.get(k) != fresh.get(k):
                return first_difference(cached.get(k), fresh.get(k), f"{path}/{k}")
    if isinstance(cached, list) and isinstance(fresh, list) and len(cached) == len(fresh):
        for i, (a, b) in enumerate(zip(cached, fresh, strict=True)):
            if a != b:
                return first_difference(a, b, f"{path}/{i}")
    return f"{path or '/'}: cached {_shown(cached)[:80]}, engine {_shown(fresh)[:80]}"


def _subjects(session: Session) -> list[Subject]:
    rows = session.scalars(
        select(Subject).options(
            joinedload(Subject.trial),
            joinedload(Subject.arm),
            selectinload(Subject.lesions),
            selectinload(Subject.timepoints)
            .selectinload(Timepoint.records)
            .joinedload(LesionRecord.lesion),
            selectinload(Subject.timepoints).selectinload(Timepoint.new_lesions),
        )
    ).unique()
    return sorted(rows, key=lambda s: (s.trial.code, s.code))


class Check:
    """The comparison of the rows with a :class:`Replay`, collecting differences."""

    def __init__(self, state: Replay) -> None:
        self.state = state
        self.out: list[str] = []
        self.measurements = 0
        self.signatures = 0
        self.central_reads = 0

    def subject(self, subject: Subject) -> None:
        prefix = f"{subject.trial.code}/{subject.code}"
        for tp in ordered_timepoints(subject):
            self.timepoint(subject, tp, f"{prefix}/{tp.code}")
        self.leftovers(prefix + "/")
        case = build_case(subject)  # the subject's rows as the engine and the trail see them
        self.fields(case, prefix)
        self.result(subject, prefix, case)

    def fields(self, case: dict[str, Any], key: str) -> None:
        said = self.state.subject_fields.pop(key, {})
        for name in SUBJECT_FIELDS:
            now = case[name]
            expected, seq = said.get(name, (None, None))
            if now != expected:
                trail = f"(seq {seq}) says {expected or 'none'}" if seq else "has no record of it"
                self.out.append(
                    f"subject {key}: {name} is {now or 'empty'} in the database but the audit "
                    f"trail {trail} — changed outside the application"
                )

    def timepoint(self, subject: Subject, tp: Timepoint, key: str) -> None:
        for rec in sorted(tp.records, key=lambda r: (r.lesion.position, r.lesion.code)):
            self.measurement(rec, f"{key}/{rec.lesion.code}")
        self.leftovers(key + "/")
        locked, seq = self.state.locks.pop(key, (False, None))
        if bool(tp.locked) != locked:
            said = f"the audit trail says {'locked' if locked else 'not locked'}"
            said += f" (seq {seq})" if seq else " (no lock record)"
            self.out.append(
                f"timepoint {key}: {'locked' if tp.locked else 'not locked'} in the database "
                f"but {said} — the lock was changed outside the application"
            )
        self.signature(subject, tp, key, self.state.signatures.pop(key, None))

    def measurement(self, rec: LesionRecord, key: str) -> None:
        self.measurements += 1
        group = "targets" if rec.lesion.kind == "target" else "non_targets"
        value = stored_target(rec) if group == "targets" else rec.state
        expected = self.state.values.pop(key, None)
        if expected is None:
            self.out.append(
                f"measurement {key}: the database holds {_shown(value)} but the audit trail "
                "has no record of it — written outside the application"
            )
        elif (group, plain(value)) != (expected[0], plain(expected[1])):
            self.out.append(
                f"measurement {key}: the database holds {_shown(value)} but the audit trail "
                f"(seq {expected[2]}) says {_shown(expected[1])} — changed outside the "
                "application"
            )

    def leftovers(self, prefix: str) -> None:
        for key in sorted(k for k in self.state.values if k.startswith(prefix)):
            _group, value, seq = self.state.values.pop(key)
            self.out.append(
                f"measurement {key}: the audit trail (seq {seq}) says {_shown(value)} but the "
                "database has no such record — removed outside the application"
            )

    def signature(self, subject: Subject, tp: Timepoint, key: str, sig: Signature | None) -> None:
        if not tp.locked:
            if sig is not None or tp.signed_by is not None:
                who = f"signed by {sig.username} (seq {sig.seq})" if sig else "signed by no one"
                self.out.append(
                    f"timepoint {key}: not locked in the database (signed_by "
                    f"{tp.signed_by or 'empty'}) but the audit trail says {who}"
                )
            return
        self.signatures += 1
        if sig is None:
            self.out.append(
                f"timepoint {key}: signed by {tp.signed_by} in the database but the audit "
                "trail holds no signature of it"
            )
            return
        meaning = sig.record.meaning if sig.record is not None else None
        if (tp.signed_by, tp.sign_meaning) != (sig.username, meaning):
            self.out.append(
                f"timepoint {key}: the database says signed by {tp.signed_by} "
                f"({tp.sign_meaning}) but the sign record (seq {sig.seq}) says {sig.username} "
                f"({meaning})"
            )
        elif sig.record is not None and sig.record.digest is not None:
            now = content_digest(subject, tp)
            if now != sig.record.digest:
                self.out.append(
                    f"timepoint {key}: the values signed at seq {sig.seq} (sha256 "
                    f"{sig.record.digest[:16]}…) are not the values stored now (sha256 "
                    f"{now[:16]}…) — a signed read was changed"
                )

    def result(self, subject: Subject, prefix: str, case: dict[str, Any]) -> None:
        if not subject.timepoints:
            if subject.result_json is not None:
                self.out.append(
                    f"subject {prefix}: a cached result but no timepoints — written outside "
                    "the application"
                )
            return
        try:
            fresh = plain(engine_assess(case))
        except InvalidInput as error:
            self.out.append(f"subject {prefix}: the engine refuses the stored case: {error}")
            return
        cached = plain(subject.result_json)
        if cached != fresh:
            self.out.append(
                f"subject {prefix}: the cached result is not a fresh engine run's at "
                f"{first_difference(cached, fresh)} — changed outside the application"
            )

    def trials(self, trials: list[Trial]) -> None:
        for trial in trials:
            said, at = self.state.settings.get(trial.code, (None, None))
            stored, said = plain(trial.settings or {}), plain(said or {})
            for name in sorted(set(stored) | set(said)):
                if stored.get(name) != said.get(name):
                    trail = f"(seq {at}) says {_shown(said.get(name))}" if at else "has none"
                    self.out.append(
                        f"trial {trial.code}: protocol setting {name} is "
                        f"{_shown(stored.get(name))} in the database but the audit trail "
                        f"{trail} — changed outside the application"
                    )
                    break
            on, seq = self.state.central.get(trial.code, (False, None))
            if bool(trial.central_review) != on:
                said = f"seq {seq}" if seq else "no record: off"
                self.out.append(
                    f"trial {trial.code}: independent central review is "
                    f"{'on' if trial.central_review else 'off'} in the database but "
                    f"{'on' if on else 'off'} in the audit trail ({said})"
                )

    def remaining(self) -> None:
        """What the trail says of subjects or timepoints the database does not have."""
        self.leftovers("")
        for key, (locked, seq) in sorted(self.state.locks.items()):
            if locked:
                self.out.append(
                    f"timepoint {key}: the audit trail (seq {seq}) says it is locked but the "
                    "database has no such timepoint"
                )


def reconcile(session: Session) -> ReconcileReport:
    """Replay the trail and compare the rows of ``session``'s database with it."""
    check = Check(replay(session.connection()))
    check.trials(list(session.scalars(select(Trial).order_by(Trial.code))))
    subjects = _subjects(session)
    for subject in subjects:
        check.subject(subject)
    from web.services.audit_review import check_reviews

    check_reviews(check, session)
    check.remaining()
    return ReconcileReport(
        len(subjects),
        check.measurements,
        check.signatures,
        tuple(check.out),
        central_reads=check.central_reads,
    )
