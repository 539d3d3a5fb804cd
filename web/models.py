"""Database rows: trials, subjects, lesions, timepoints, measurements, users, audit.

The rows hold what readers recorded, never what the engine concluded by rule: a subject's
``result_json`` is a cache that the service layer (:mod:`web.services`) recomputes with
``recist.jsonio.assess_json`` in the same transaction as every write, so it can never be
edited by hand. Sizes are stored in integer tenths of a millimetre (R-EXACT), like the
engine holds them.

No business rules live here (style.md): models are plain mappings; checks are in the
engine and in the service layer.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """The current time in UTC (timezone-aware), for audit and bookkeeping columns."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table; Alembic's ``target_metadata``."""


# The roles of the issue, from least to most privileged in spirit (the permission table in
# web.auth decides what each may do; the order here means nothing).
ROLES = ("reader", "adjudicator", "trial_manager", "reviewer", "admin")
# Roles that work on clinical data (an admin holds one only when given it too: "admin+reader").
CLINICAL_ROLES = ("reader", "adjudicator", "trial_manager", "reviewer")


def role_set(role: str | None) -> frozenset[str]:
    """The roles a stored role text holds: ``"admin+reader"`` -> {admin, reader}."""
    return frozenset(part for part in (role or "").split("+") if part)


# A controlled list of sites (R-SEL-2 groups paired organs and all lymph nodes; the engine
# normalises the words, so the list uses its vocabulary). "other" keeps rare sites possible.
SITES = (
    "adrenal", "bone", "brain", "breast", "chest wall", "kidney", "liver", "lung", "lymph node",
    "mediastinum", "ovary", "pancreas", "peritoneum", "pleura", "pleural effusion", "ascites",
    "skin", "soft tissue", "spleen", "other",
)  # fmt: skip

TARGET_STATES = ("measured", "too_small", "absent", "not_evaluated", "fragments", "merged")
NON_TARGET_STATES = ("present", "absent", "progression", "not_evaluated")
# iRECIST's new lesions (I-NEW-1, I-NEW-4): a category, and a size given as a word.
NEW_CATEGORIES = ("target", "non-target")
NEW_SIZE_STATES = ("too_small", "absent", "not_evaluated")


class Trial(Base):
    """A clinical trial with its protocol settings (``recist.settings.Settings``)."""

    __tablename__ = "trial"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    # Settings.to_dict(); validated by Settings.from_dict in the service layer.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Independent central review: two blinded reads per subject + adjudication
    # (web.services.central).
    central_review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The DICOMweb service the trial's studies are pulled from (web.services.pacs); its
    # credentials are never stored (RECIST_PACS_USER / RECIST_PACS_PASSWORD).
    pacs_url: Mapped[str | None] = mapped_column(String(500), nullable=True)

    arms: Mapped[list[Arm]] = relationship(
        back_populates="trial", order_by="Arm.code", cascade="all, delete-orphan"
    )
    subjects: Mapped[list[Subject]] = relationship(
        back_populates="trial", order_by="Subject.code", cascade="all, delete-orphan"
    )


class Arm(Base):
    """A treatment arm of a trial."""

    __tablename__ = "arm"
    __table_args__ = (UniqueConstraint("trial_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))

    trial: Mapped[Trial] = relationship(back_populates="arms")


class Subject(Base):
    """A randomised subject; ``result_json`` is the engine's latest result (a cache)."""

    __tablename__ = "subject"
    __table_args__ = (UniqueConstraint("trial_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    arm_id: Mapped[int | None] = mapped_column(ForeignKey("arm.id"), nullable=True)
    randomized_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    died_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    new_therapy_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    result_json: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The pseudonymous patient key of the first study saved for this subject: a study of
    # another patient is refused (web.services.studies.check_binding).
    imaging_key: Mapped[str | None] = mapped_column(String(64), nullable=True)

    trial: Mapped[Trial] = relationship(back_populates="subjects")
    arm: Mapped[Arm | None] = relationship()
    lesions: Mapped[list[Lesion]] = relationship(
        back_populates="subject", order_by="Lesion.position", cascade="all, delete-orphan"
    )
    timepoints: Mapped[list[Timepoint]] = relationship(
        back_populates="subject",
        order_by="(Timepoint.date, Timepoint.id)",
        cascade="all, delete-orphan",
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it once


class Lesion(Base):
    """A lesion chosen at baseline: a target (T01…) or a non-target (NT01…)."""

    __tablename__ = "lesion"
    __table_args__ = (UniqueConstraint("subject_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("subject.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16))  # "target" | "non-target"
    site: Mapped[str] = mapped_column(String(64))
    nodal: Mapped[bool] = mapped_column(Boolean, default=False)
    treated_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    treatment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    slice_thickness_units: Mapped[int | None] = mapped_column(Integer, nullable=True)  # R-EXACT
    # Free text ("segment VII"), an annotation the rules never read (SDTM SUPPTU TULOCDTL).
    location: Mapped[str | None] = mapped_column(String(120), nullable=True)

    subject: Mapped[Subject] = relationship(back_populates="lesions")


class Timepoint(Base):
    """One assessment (the earliest is the baseline); ``version`` refuses lost updates."""

    __tablename__ = "timepoint"
    __table_args__ = (UniqueConstraint("subject_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("subject.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(32))  # the visit: BL, W8, …
    date: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # A signed read is locked (web.services.signing); the signature's history is in the audit trail.
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    signed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sign_meaning: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # What imaging_io measured when the values came from an uploaded study (evidence). At
    # the baseline its "volumes" (lesion code → mL) are the lesions' baseline volumes that
    # imaging supplied (an attached study, or an imported case's volume_ml): R-ELIG-VOLUME.
    imaging_json: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    subject: Mapped[Subject] = relationship(back_populates="timepoints")
    records: Mapped[list[LesionRecord]] = relationship(
        back_populates="timepoint", cascade="all, delete-orphan"
    )
    new_lesions: Mapped[list[NewLesion]] = relationship(
        back_populates="timepoint", order_by="NewLesion.code", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it once


class LesionRecord(Base):
    """A baseline lesion's record at one timepoint (target size or non-target state)."""

    __tablename__ = "lesion_record"
    __table_args__ = (UniqueConstraint("timepoint_id", "lesion_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    timepoint_id: Mapped[int] = mapped_column(
        ForeignKey("timepoint.id", ondelete="CASCADE"), index=True
    )
    lesion_id: Mapped[int] = mapped_column(ForeignKey("lesion.id", ondelete="CASCADE"))
    # Target: one of TARGET_STATES; non-target: one of NON_TARGET_STATES.
    state: Mapped[str] = mapped_column(String(16))
    size_units: Mapped[int | None] = mapped_column(Integer, nullable=True)  # measured
    fragments_units: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)  # R-SPLIT
    merged_into: Mapped[str | None] = mapped_column(String(32), nullable=True)  # R-MERGE
    scan_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    # The key image of the measurement (DICOM series and instance number): annotations.
    series: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image: Mapped[int | None] = mapped_column(Integer, nullable=True)

    timepoint: Mapped[Timepoint] = relationship(back_populates="records")
    lesion: Mapped[Lesion] = relationship()


class NewLesion(Base):
    """A lesion first seen after baseline (NL01…), possibly equivocal (R-NEW-2), and under
    iRECIST its listing at each later timepoint (I-NEW-4): its size (``size_units``, or a
    word in ``size_state``), its category at first sighting and a new non-target's state.
    A later listing may leave ``site`` empty: it keeps the first listing's."""

    __tablename__ = "new_lesion"
    __table_args__ = (UniqueConstraint("timepoint_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    timepoint_id: Mapped[int] = mapped_column(
        ForeignKey("timepoint.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(64))
    equivocal: Mapped[bool] = mapped_column(Boolean, default=False)
    nodal: Mapped[bool] = mapped_column(Boolean, default=False)
    short_axis_units: Mapped[int | None] = mapped_column(Integer, nullable=True)
    scan_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    # size_mm: LD (a node's short axis) in units (R-EXACT), or one of NEW_SIZE_STATES.
    size_units: Mapped[int | None] = mapped_column(Integer, nullable=True)
    size_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    category: Mapped[str | None] = mapped_column(String(16), nullable=True)  # NEW_CATEGORIES
    state: Mapped[str | None] = mapped_column(String(16), nullable=True)  # NON_TARGET_STATES
    location: Mapped[str | None] = mapped_column(String(120), nullable=True)
    # The key image of the measurement (DICOM series and instance number): annotations.
    series: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image: Mapped[int | None] = mapped_column(Integer, nullable=True)

    timepoint: Mapped[Timepoint] = relationship(back_populates="new_lesions")


class User(Base):
    """A person who logs in; ``password_hash`` is a werkzeug scrypt hash."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    # The person's name as the signature manifestation shows it (21 CFR 11.50); may be
    # empty for users added before it existed (web.services.users.display_name).
    full_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Consecutive failed logins, and the lock they earned (web.services.authenticate).
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    # Flask-Login's user protocol, spelled out instead of inheriting its mixin.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)


class TrialMember(Base):
    """A user assigned to a trial: everyone but an admin reaches only the trials they are
    members of (web.services.membership)."""

    __tablename__ = "trial_member"
    __table_args__ = (UniqueConstraint("trial_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    added_by: Mapped[str] = mapped_column(String(64))


class PacsStudy(Base):
    """A machine-measured study kept for a subject: pulled from the trial's PACS
    (``source`` ``pacs``) or measured by a batch (``batch``, :mod:`web.services.batch`); it
    waits for a reader to confirm it as a timepoint (never saved or signed by the machine)."""

    __tablename__ = "pacs_study"
    __table_args__ = (UniqueConstraint("subject_id", "study_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("subject.id", ondelete="CASCADE"), index=True
    )
    study_uid: Mapped[str] = mapped_column(String(128))
    timepoint: Mapped[str] = mapped_column(String(64))
    study_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    measured: Mapped[dict[str, Any]] = mapped_column(JSON)
    pulled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    pulled_by: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default="pacs", server_default="pacs")

    subject: Mapped[Subject] = relationship()


class ApiToken(Base):
    """A bearer token for automation; only its SHA-256 is stored. It works until
    ``expires_at`` unless ``revoked_at`` is set (web.services.access.check_token)."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    user: Mapped[User] = relationship()


class ApiTokenUse(Base):
    """That a token was used on a route family in an hour: one audit record each."""

    __tablename__ = "api_token_use"

    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_token.id", ondelete="CASCADE"), primary_key=True
    )
    family: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)


class UserSession(Base):
    """A browser session: the cookie carries a random id, only its SHA-256 is stored.

    A session ends when ``revoked_at`` is set (logout, password change, deactivation,
    idle or absolute timeout; ``ended_by`` says which)."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)

    user: Mapped[User] = relationship()


class LoginFailure(Base):
    """One failed password check from a client address (the per-address limit counts
    these in a window; kept in the database so that a restart does not reset them)."""

    __tablename__ = "login_failure"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AuditRecord(Base):
    """One changed field: who, when (UTC), which entity and field, old, new, and why.

    Written by the service layer in the same transaction as the change; append-only (the
    application never updates or deletes these rows, and database triggers refuse it).
    ``seq``, ``prev_hash`` and ``hash`` chain each record to the previous one; they are
    filled in when the record is flushed (:mod:`web.services.audit`).
    """

    __tablename__ = "audit_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # create | update | delete
    entity: Mapped[str] = mapped_column(String(32))
    entity_key: Mapped[str] = mapped_column(String(200))  # e.g. "DEMO/0101-004/W8/T01"
    field: Mapped[str | None] = mapped_column(String(64), nullable=True)
    old: Mapped[str | None] = mapped_column(Text, nullable=True)
    new: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class ProgressionReview(Base):
    """One event in the review of a subject's progression call (rows are only added).

    ``engine_*`` is the engine's call the event was about (timepoint, date, rule), so that
    a review never silently carries over to a call that changed later. ``action``:
    ``agreed`` or ``queried`` (a reviewer), ``answered`` (the reader, to a query),
    ``overridden`` (an adjudicator replaces the call: ``override_timepoint`` and
    ``override_date``, both empty for "no progression").
    """

    __tablename__ = "progression_review"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("subject.id", ondelete="CASCADE"), index=True
    )
    engine_timepoint: Mapped[str] = mapped_column(String(32))
    engine_date: Mapped[date] = mapped_column(Date)
    engine_rule: Mapped[str] = mapped_column(String(32))
    engine_back_dated: Mapped[bool] = mapped_column(Boolean, default=False)
    action: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    override_timepoint: Mapped[str | None] = mapped_column(String(32), nullable=True)
    override_date: Mapped[date | None] = mapped_column(Date, nullable=True)


class CentralRead(Base):
    """One independent reader's blinded read of a subject (slot 1 or 2), as a case of the
    docs/contracts.md contract with the engine's result; signed when submitted."""

    __tablename__ = "central_read"
    __table_args__ = (
        UniqueConstraint("subject_id", "slot"),
        UniqueConstraint("subject_id", "reader"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("subject.id", ondelete="CASCADE"), index=True
    )
    slot: Mapped[int] = mapped_column(Integer)
    reader: Mapped[str] = mapped_column(String(64))
    case_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    result_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)


class Adjudication(Base):
    """The adjudicator's signed choice between two disagreeing reads of a subject."""

    __tablename__ = "adjudication"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("subject.id", ondelete="CASCADE"), unique=True
    )
    accepted_slot: Mapped[int] = mapped_column(Integer)
    disagreement: Mapped[str] = mapped_column(Text)
    rationale: Mapped[str] = mapped_column(Text)
    adjudicator: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# The batch jobs' table lives in its own module (this one is near its size limit).
from web.models_batch import BatchJob as BatchJob  # noqa: E402
