"""The audit log: who changed labels, rules, models, users and API tokens, when, and from where.

One call, :func:`record`, adds an ``AuditEvent`` to the session. The service function that makes
a change calls it before its own commit, so the event and the change commit together or roll
back together: no event for a change that did not happen, no change without its event. Bulk
actions (bulk apply, batch undo) record one event with their count, never one per item.

Two changes are recorded by the ORM instead, as their rows are inserted, because code all over
the app writes those rows and the row *is* the change:

- a model activation (a ``model_activation`` row, written by ``webapp.registry`` for the
  promotion gate, the Models page and ``flask models``): ``model.activate`` or
  ``model.rollback``;
- a background job that retrains a model or applies the rules (a ``job`` row, from the Models
  page, the rules page, ``flask models train`` or an import): ``model.retrain`` or
  ``rules.apply``.

A mapper ``after_insert`` hook writes their event on the same connection, inside the same flush,
so the guarantee is the same. SQLAlchemy session events were not used for the rest: the bulk
paths write with Core statements that the ORM never sees, and only the service knows what a
change meant (an accept, an undo, a role change).
"""

from __future__ import annotations

import getpass
import threading
from dataclasses import dataclass
from datetime import datetime

import click
from flask import g, has_request_context, request
from flask_login import current_user
from sqlalchemy import JSON, String, event, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from webapp.auth.models import User, utcnow
from webapp.extensions import db

#: Every action the log knows, with the words the audit page shows for it.
ACTIONS = {
    "label.accept": "accepted an item",
    "label.reject": "rejected an item",
    "label.skip": "skipped an item",
    "label.edit": "edited an item's labels",
    "label.undo": "undid a labelling decision",
    "label.bulk_apply": "applied a label in bulk",
    "label.bulk_undo": "undid a bulk action",
    "rule.create": "created a rule",
    "rule.update": "edited a rule",
    "rule.enable": "enabled a rule",
    "rule.disable": "disabled a rule",
    "rule.move": "moved a rule",
    "rule.delete": "deleted a rule",
    "rules.apply": "applied the rules",
    "model.retrain": "asked for a retrain",
    "model.activate": "activated a model version",
    "model.rollback": "rolled a model back",
    "user.create": "created an account",
    "user.role": "changed a role",
    "user.deactivate": "deactivated an account",
    "user.activate": "activated an account",
    "user.password_reset": "reset a password",
    "token.issue": "issued an API token",
    "token.revoke": "revoked an API token",
}
SUBJECT_TYPES = ("item", "batch", "rule", "model", "user", "token")
#: Where a change came from: a page, the JSON API, ``flask ...``, or a background job.
ORIGINS = ("web", "api", "cli", "background")
#: Limits that keep ``detail`` short: it says what changed, it is not a copy of the data.
TEXT_MAX = 200
LIST_MAX = 20
ACTOR_MAX = 80
#: Job kinds whose creation is itself an audited request.
JOB_ACTIONS = {"retrain": "model.retrain", "gifts-apply-rules": "rules.apply"}
#: The thread backend's job threads (``webapp.jobs.ThreadBackend``) carry this name prefix.
JOB_THREAD_PREFIX = "curate-job"


class AuditEvent(db.Model):
    """One change: when, who (id and the name at the time), what, to which subject, from where.

    ``actor_id`` has no foreign key on purpose: the log must never stop a change, and its
    ``actor_name`` snapshot keeps saying who it was whatever happens to the account.
    """

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(index=True)
    actor_name: Mapped[str] = mapped_column(String(ACTOR_MAX), index=True)
    origin: Mapped[str] = mapped_column(String(16))
    remote_addr: Mapped[str | None] = mapped_column(String(45))
    action: Mapped[str] = mapped_column(String(32), index=True)
    subject_type: Mapped[str | None] = mapped_column(String(16), index=True)
    subject_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict | None] = mapped_column(JSON)

    @property
    def action_text(self) -> str:
        """The action in words."""
        return ACTIONS.get(self.action, self.action)


@dataclass(frozen=True)
class Actor:
    """Who is acting, as the log records it."""

    id: int | None
    name: str
    origin: str
    remote_addr: str | None = None


def _os_user() -> str:
    """The operating-system account running ``flask ...`` (``unknown`` when it has none)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER variable and no passwd entry (some containers)
        return "unknown"


def _in_background_job() -> bool:
    """True inside a job: a thread-backend job thread, or an rq work-horse."""
    if threading.current_thread().name.startswith(JOB_THREAD_PREFIX):
        return True
    try:
        from rq import get_current_job
    except ImportError:  # rq is an optional extra
        return False
    return get_current_job() is not None


def current_origin() -> str:
    """``web``, ``api``, ``cli`` or ``background`` for the code running now."""
    if has_request_context():
        return "api" if request.blueprint == "api" else "web"
    if _in_background_job():
        return "background"  # checked before click: an rq horse runs inside `flask jobs worker`
    if click.get_current_context(silent=True) is not None:
        return "cli"
    return "background"


def cli_name() -> str:
    """The actor name of a ``flask ...`` command: ``cli:<OS user>``."""
    return f"cli:{_os_user()}"


def current_actor() -> Actor:
    """Who is acting: the logged-in user (a page), the token's user (the API), ``cli:<OS user>``
    (a command), or ``system`` (a background job on nobody's behalf)."""
    origin = current_origin()
    if origin in ("web", "api"):
        user = g.get("api_user") if origin == "api" else (
            current_user._get_current_object() if current_user.is_authenticated else None)
        name, user_id = (user.username, user.id) if user is not None else ("anonymous", None)
        return Actor(user_id, name, origin, request.remote_addr)
    return Actor(None, cli_name() if origin == "cli" else "system", origin)


def _short(value):
    """``value`` with long texts cut and long lists shortened, so details stay small."""
    if isinstance(value, str):
        return value if len(value) <= TEXT_MAX else value[:TEXT_MAX - 1] + "…"
    if isinstance(value, dict):
        return {str(key): _short(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        items = list(value)
        kept = [_short(item) for item in items[:LIST_MAX]]
        if len(items) > LIST_MAX:
            kept.append(f"… and {len(items) - LIST_MAX} more")
        return kept
    return value


def _values(actor: Actor, action: str, subject_type: str | None, subject_id,
            detail: dict | None) -> dict:
    """The column values of one event, checked."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown audit action {action!r}: add it to webapp.audit.ACTIONS.")
    if subject_type is not None and subject_type not in SUBJECT_TYPES:
        raise ValueError(f"Unknown audit subject type {subject_type!r}.")
    return {"created_at": utcnow(), "actor_id": actor.id, "actor_name": actor.name[:ACTOR_MAX],
            "origin": actor.origin, "remote_addr": actor.remote_addr, "action": action,
            "subject_type": subject_type,
            "subject_id": None if subject_id is None else str(subject_id)[:64],
            "detail": _short(detail) if detail else None}


def record(action: str, subject_type: str | None = None, subject_id=None,
           detail: dict | None = None, actor: Actor | None = None) -> AuditEvent:
    """Add an event to the current session; it commits with the caller's change.

    Call it from the service function that makes the change, before that function commits.
    ``actor`` defaults to :func:`current_actor`. Raises ValueError for an action or subject type
    this module does not know (a typo would otherwise hide events from the page's filters).
    """
    audit_event = AuditEvent(**_values(actor or current_actor(), action, subject_type,
                                       subject_id, detail))
    db.session.add(audit_event)
    return audit_event


# --- rows that are themselves the change ------------------------------------------------------

def _actor_named(connection, name: str | None) -> Actor:
    """The actor of a change made on behalf of ``name`` (the row's own "by" column).

    Runs inside a flush, so it reads with the flush's connection and never through the session
    or ``current_user`` (which could load a row mid-flush).
    """
    origin = current_origin()
    if origin == "cli" and (name is None or name == "cli"):
        return Actor(None, cli_name(), origin)
    if not name:
        return Actor(None, "system", origin,
                     request.remote_addr if has_request_context() else None)
    user_id = connection.scalar(select(User.id).where(User.username == name))
    return Actor(user_id, name, origin, request.remote_addr if has_request_context() else None)


def _write(connection, actor: Actor, action: str, subject_type: str, subject_id,
           detail: dict) -> None:
    connection.execute(insert(AuditEvent.__table__),
                       _values(actor, action, subject_type, subject_id, detail))


def _activation_inserted(connection, target) -> None:
    """``model.activate`` or ``model.rollback``, in the flush that activates the version."""
    from webapp.registry import ModelVersion

    version = connection.scalar(select(ModelVersion.version)
                                .where(ModelVersion.id == target.version_id))
    action = "model.rollback" if target.reason == "rollback" else "model.activate"
    _write(connection, _actor_named(connection, target.activated_by), action, "model",
           target.kind, {"version": version, "reason": target.reason})


def _job_inserted(connection, target) -> None:
    """``model.retrain`` or ``rules.apply`` when such a job is queued (not for a duplicate
    request, whose insert fails on the job's dedupe key and rolls this event back with it)."""
    action = JOB_ACTIONS.get(target.kind)
    if action is None:
        return
    params = dict(target.params or {})
    subject = ("model", params.get("kind")) if action == "model.retrain" else ("rule", None)
    detail = {"job": target.id}
    detail.update({key: value for key, value in params.items()
                   if key not in ("kind", "trained_by", "started_by")})
    _write(connection, _actor_named(connection, target.created_by), action, *subject, detail)


#: Tables whose inserted rows are themselves audited changes, and how.
ROW_HOOKS = {"model_activation": _activation_inserted, "job": _job_inserted}


@event.listens_for(db.Model, "after_insert", propagate=True)
def _row_inserted(_mapper, connection, target) -> None:
    """Dispatch on the table. Registered on the models' base class rather than on ``Job`` and
    ``Activation``, whose modules import ``webapp.auth`` (which imports this module)."""
    hook = ROW_HOOKS.get(target.__tablename__)
    if hook is not None:
        hook(connection, target)


# --- the page ---------------------------------------------------------------------------------

def events_query(actor: str | None = None, action: str | None = None,
                 subject_type: str | None = None):
    """Events newest first, narrowed by actor name, action and subject type when given."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if actor:
        query = query.where(AuditEvent.actor_name == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    if subject_type:
        query = query.where(AuditEvent.subject_type == subject_type)
    return query


def actor_names() -> list[str]:
    """Every actor name in the log, sorted (the page's actor filter)."""
    return list(db.session.scalars(select(AuditEvent.actor_name).distinct()
                                   .order_by(AuditEvent.actor_name)))
