"""The job table: the only thing the UI reads about background work, whatever runs it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.auth.models import utcnow
from webapp.extensions import db

JOB_STATUSES = ("queued", "running", "succeeded", "failed")


def new_job_id() -> str:
    """A random id, safe to show in URLs and to pass to RQ."""
    return uuid.uuid4().hex


class Job(db.Model):
    """One piece of background work, with progress, heartbeat and outcome."""

    __tablename__ = "job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    kind: Mapped[str] = mapped_column(String(32))
    #: What the job works on, e.g. the model kind for a retrain; lets pages find "their" job.
    subject: Mapped[str | None] = mapped_column(String(64), index=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(String(300), default="Waiting for a worker")
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    #: Set while queued or running and cleared when done; unique, so one job per key at a time.
    dedupe_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()

    @property
    def done(self) -> bool:
        """True once the job succeeded or failed."""
        return self.status in ("succeeded", "failed")

    def __repr__(self) -> str:
        return f"<Job {self.kind} {self.id[:8]} {self.status} {self.progress}%>"
