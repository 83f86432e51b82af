"""Import batches: one upload of pizzeria nights, from the file bytes to the applied outcome.

A batch keeps the uploaded files (one row each in ``pizzeria_import_file``), its status, the
preview that the background job computed, the reject report and, once applied, what was written.
The parsed rows are kept too, so applying never has to parse the files again.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.auth.models import utcnow
from webapp.extensions import db

#: uploaded -> parsing -> previewed -> applied; "failed" from uploaded or parsing.
BATCH_STATUSES = ("uploaded", "parsing", "previewed", "applied", "failed")
#: "nightly": one CSV of nights; "exports": a reservations export and/or a point-of-sale export.
BATCH_KINDS = ("nightly", "exports")
#: The role of an uploaded file within its batch.
FILE_ROLES = ("nightly", "reservations", "pos")
FILENAME_MAX = 255


def new_batch_id() -> str:
    """A random id, safe to show in URLs."""
    return uuid.uuid4().hex


class ImportBatch(db.Model):
    """One upload of nights and everything learnt about it."""

    __tablename__ = "pizzeria_import_batch"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_batch_id)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="uploaded")
    #: Why the batch failed as a whole (a missing column, an unreadable file, a dead worker).
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(32))
    new_count: Mapped[int] = mapped_column(default=0)
    unchanged_count: Mapped[int] = mapped_column(default=0)
    update_count: Mapped[int] = mapped_column(default=0)
    conflict_count: Mapped[int] = mapped_column(default=0)
    reject_count: Mapped[int] = mapped_column(default=0)
    #: What the preview card shows: counts, conflicts (capped), rejects (capped), problems.
    preview: Mapped[dict | None] = mapped_column(JSON)
    # The next two can be megabytes: deferred, so lists of batches never load them.
    #: Every good row, as JSON-ready dicts, so applying needs no second parse.
    parsed_rows: Mapped[list | None] = mapped_column(JSON, deferred=True)
    #: The downloadable reject report (CSV text), already safe to open in a spreadsheet.
    report: Mapped[str | None] = mapped_column(Text, deferred=True)
    #: What applying wrote: counts, and whether conflicts were overwritten.
    outcome: Mapped[dict | None] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    applied_by: Mapped[str | None] = mapped_column(String(64))
    applied_at: Mapped[datetime | None] = mapped_column()

    files: Mapped[list[ImportFile]] = relationship(
        back_populates="batch", cascade="all, delete-orphan", order_by="ImportFile.id",
        lazy="selectin",
    )

    @property
    def filenames(self) -> str:
        """The uploaded file names, comma-separated, for lists and headings."""
        return ", ".join(file.filename for file in self.files)

    def payload(self, role: str) -> bytes | None:
        """The bytes uploaded as ``role`` (nightly, reservations, pos), or None."""
        for file in self.files:
            if file.role == role:
                return file.payload
        return None

    def __repr__(self) -> str:
        return f"<ImportBatch {self.id[:8]} {self.kind} {self.status}>"


class ImportFile(db.Model):
    """One uploaded file of a batch; its bytes are dropped once the batch is applied."""

    __tablename__ = "pizzeria_import_file"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[str] = mapped_column(
        ForeignKey("pizzeria_import_batch.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(FILENAME_MAX))
    size: Mapped[int] = mapped_column()
    #: None once applied: the nights hold the data, and an export may name guests.
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)

    batch: Mapped[ImportBatch] = relationship(back_populates="files")


def get_batch(batch_id: str) -> ImportBatch | None:
    """The batch with ``batch_id``, fresh from the database (a job may have just changed it)."""
    db.session.expire_all()
    return db.session.get(ImportBatch, batch_id)


def recent_batches(limit: int = 10) -> list[ImportBatch]:
    """The newest batches, newest first."""
    query = (select(ImportBatch).order_by(ImportBatch.created_at.desc(), ImportBatch.id)
             .limit(limit))
    return list(db.session.scalars(query))
