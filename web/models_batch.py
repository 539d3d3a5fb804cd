"""The batch jobs a trial manager starts from the web (:mod:`web.services.batch`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from web.models import Base, Trial, utcnow


class BatchJob(Base):
    """One run of ``recist batch`` for a trial, started from the web: who started it and
    when, from what (an uploaded manifest or a folder under the batch root), its status
    (``queued``, ``running``, ``done``, ``failed``), its counts and one outcome per study
    (subject, timepoint, paths, status, reason). The studies it measured wait as
    :class:`~web.models.PacsStudy` rows (``source`` ``batch``) for a reader."""

    __tablename__ = "batch_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"), index=True)
    started_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    source: Mapped[str] = mapped_column(String(16))  # "manifest" | "folder"
    source_name: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    landed: Mapped[int] = mapped_column(Integer, default=0)
    outcomes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    trial: Mapped[Trial] = relationship()
