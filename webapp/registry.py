"""The model registry: which versions exist, which one is active, and who activated what.

The database is the source of truth for the active version of each model kind, so every worker
on every host agrees. Artefacts live in ``MODEL_DIR``; rows here point at them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.auth.models import utcnow
from webapp.extensions import db

STATUSES = ("candidate", "active", "retired", "failed")
ACTIVATION_ATTEMPTS = 3

#: The database itself allows one active version per kind (a partial unique index), so two
#: concurrent activations can never both win, on SQLite or PostgreSQL.
ONLY_ONE_ACTIVE = text("status = 'active'")


class ModelVersion(db.Model):
    """One published artefact of a model kind, with its hold-out metrics."""

    __tablename__ = "model_version"
    __table_args__ = (
        UniqueConstraint("kind", "version", name="uq_model_version_kind_version"),
        Index("uq_model_version_one_active", "kind", unique=True,
              sqlite_where=ONLY_ONE_ACTIVE, postgresql_where=ONLY_ONE_ACTIVE),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="candidate", index=True)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    training_rows: Mapped[int] = mapped_column(default=0)
    data_hash: Mapped[str] = mapped_column(String(64), default="")
    trained_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Why a worker could not load it (tampered, library mismatch…); the old model kept serving.
    load_error: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<ModelVersion {self.kind} {self.version} {self.status}>"


class Activation(db.Model):
    """History: who made which version active, when, and why (gate, manual, rollback)."""

    __tablename__ = "model_activation"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"))
    activated_by: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200))
    activated_at: Mapped[datetime] = mapped_column(default=utcnow)

    model_version: Mapped[ModelVersion] = relationship()


class RegistryError(ValueError):
    """A registry change that cannot be made, with a message for the admin."""


def active_version(kind: str) -> ModelVersion | None:
    """The active version of ``kind``, or None when nothing has been activated."""
    return db.session.scalar(
        select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.status == "active")
    )


def active_pointer(kind: str) -> tuple[str, str] | None:
    """``(version, sha256)`` of the active version: the cheap query each worker polls."""
    row = db.session.execute(
        select(ModelVersion.version, ModelVersion.sha256).where(
            ModelVersion.kind == kind, ModelVersion.status == "active"
        )
    ).first()
    return (row.version, row.sha256) if row else None


def get_version(kind: str, version: str) -> ModelVersion:
    """The row for ``kind``/``version``; RegistryError when there is none."""
    row = db.session.scalar(
        select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.version == version)
    )
    if row is None:
        raise RegistryError(f"There is no {kind} model version {version!r}.")
    return row


def versions(kind: str, limit: int = 20) -> list[ModelVersion]:
    """The newest versions of ``kind`` first."""
    query = (
        select(ModelVersion)
        .where(ModelVersion.kind == kind)
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


def activations(kind: str, limit: int = 10) -> list[Activation]:
    """The newest activations of ``kind`` first."""
    query = (
        select(Activation)
        .where(Activation.kind == kind)
        .order_by(Activation.activated_at.desc(), Activation.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


def add_candidate(kind: str, meta, path: str, trained_by: str | None) -> ModelVersion:
    """Record a freshly published artefact as a candidate (not yet serving)."""
    row = ModelVersion(
        kind=kind, version=meta.version, path=path, sha256=meta.sha256, status="candidate",
        metrics=dict(meta.metrics), params=dict(meta.params), training_rows=meta.training_rows,
        data_hash=meta.data_hash, trained_by=trained_by,
    )
    db.session.add(row)
    db.session.commit()
    return row


def activate(kind: str, version: str, by: str | None, reason: str) -> ModelVersion:
    """Make ``version`` the active one and retire the previous, in one transaction.

    Workers see the change the next time they poll (about once a second) and swap to it. When
    another activation of the same kind commits first, the database refuses a second active
    row; we then retry against the new state, so the later activation wins cleanly.
    """
    for _ in range(ACTIVATION_ATTEMPTS):
        try:
            return _activate_once(kind, version, by, reason)
        except IntegrityError:
            db.session.rollback()
    raise RegistryError(f"Could not activate {kind} {version}: other activations kept "
                        "winning the race. Try again.")


def _activate_once(kind: str, version: str, by: str | None, reason: str) -> ModelVersion:
    target = get_version(kind, version)
    if target.status == "failed":
        raise RegistryError(f"{kind} {version} failed and cannot be activated.")
    if target.status == "active":
        return target
    current = db.session.scalar(
        select(ModelVersion)
        .where(ModelVersion.kind == kind, ModelVersion.status == "active")
        .with_for_update()
    )
    if current is not None:
        current.status = "retired"
        db.session.flush()  # the old row leaves 'active' before the new one enters it
    target.status = "active"
    db.session.add(Activation(kind=kind, version_id=target.id, activated_by=by, reason=reason))
    db.session.commit()
    return target


def previous_version(kind: str) -> ModelVersion | None:
    """The version that was active before the current one, if it can serve again."""
    current = active_version(kind)
    for activation in activations(kind, limit=50):
        candidate = activation.model_version
        if current is not None and candidate.id == current.id:
            continue
        if candidate.status != "failed":
            return candidate
    return None


def rollback(kind: str, by: str | None) -> ModelVersion:
    """Re-activate the previously active version (one click on the Models page)."""
    previous = previous_version(kind)
    if previous is None:
        raise RegistryError(f"There is no earlier {kind} version to roll back to.")
    return activate(kind, previous.version, by, reason="rollback")


def mark_failed(row: ModelVersion, error: str) -> None:
    """Mark a version that failed verification; it can never become active."""
    row.status = "failed"
    row.load_error = error
    db.session.commit()


def record_load_error(kind: str, version: str, error: str) -> None:
    """Note that a worker could not load ``version``; it keeps serving its old model."""
    row = db.session.scalar(
        select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.version == version)
    )
    if row is not None:
        row.load_error = error
        db.session.commit()
