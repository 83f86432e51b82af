"""API tokens: stored hashed, shown once, revocable, and scoped to a role.

A token carries a role (admin, staff or host) chosen when it is issued, at most its user's. A
request made with it acts with the *lower* of the token's role and its user's role now, so a
token never exceeds its user: demote the user and their tokens are demoted with them.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship

from webapp import audit
from webapp.auth.models import User, utcnow
from webapp.auth.roles import ROLES, lower_role, role_rank
from webapp.extensions import db

#: Characters of the token kept in clear, so people can tell their tokens apart.
PREFIX_LENGTH = 8
#: ``last_used_at`` is refreshed at most this often, so a busy client does not cost a database
#: write on every request; "last used" is only ever shown to the minute.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiToken(db.Model):
    """A bearer token for the JSON API. Only its sha256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters of the token, so people can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(12))
    #: The most the token may do (admin, staff or host); see ``effective_role``.
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()

    @property
    def label(self) -> str:
        """The label its creator gave it (stored in the ``name`` column)."""
        return self.name

    @property
    def effective_role(self) -> str:
        """The role a request with this token acts with: the lower of its own and its user's."""
        return lower_role(self.role, self.user.role)

    @property
    def live(self) -> bool:
        """True while it authenticates: not revoked, and its user is active."""
        return self.revoked_at is None and self.user.active


class TokenError(ValueError):
    """A token that cannot be issued as asked, with a message for the person asking."""


LABEL_MAX = ApiToken.name.type.length


def hash_token(raw: str) -> str:
    """The sha256 hex digest under which the token ``raw`` is stored and looked up."""
    return hashlib.sha256(raw.encode()).hexdigest()


def check_token_role(user: User, role: str | None) -> str:
    """The role a new token of ``user`` gets: ``role``, or the user's own when None.

    Raises
    ------
    TokenError
        When ``role`` is unknown or gives more rights than ``user`` has.
    """
    role = role or user.role
    if role not in ROLES:
        raise TokenError(f"Unknown role {role!r}. Choose one of: {', '.join(ROLES)}.")
    if role_rank(role) > role_rank(user.role):
        raise TokenError(f"A token cannot have more rights than its user: {user.username} is "
                         f"{user.role}, so choose {user.role} or lower.")
    return role


def create_token(user: User, label: str, role: str | None = None) -> str:
    """Create and commit a token for ``user`` with ``role`` (default: the user's); return it.

    The token itself is never stored, only its hash. The issue is audited in the same commit.

    Raises
    ------
    TokenError
        When ``label`` is empty or longer than ``LABEL_MAX`` characters, or ``role`` is unknown
        or above the user's role.
    """
    label = label.strip()
    if not label or len(label) > LABEL_MAX:
        raise TokenError(f"A token label needs 1 to {LABEL_MAX} characters.")
    role = check_token_role(user, role)
    # 32 random bytes: far beyond guessing, so a fast unsalted hash is enough to store it.
    raw = secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=label, token_hash=hash_token(raw),
                     prefix=raw[:PREFIX_LENGTH], role=role)
    db.session.add(token)
    db.session.flush()  # the id, for the audit event
    audit.record("token.issue", "token", token.id,
                 {"user": user.username, "label": label, "role": role, "prefix": token.prefix})
    db.session.commit()
    return raw


def authenticate(raw: str) -> ApiToken | None:
    """The live token ``raw`` (its user loaded), or None.

    Revoked tokens and the tokens of deactivated users authenticate no one; a request made with
    the token acts as ``token.user`` with ``token.effective_role``. ``last_used_at`` is
    refreshed when it is older than ``LAST_USED_RESOLUTION``.
    """
    if not raw:
        return None
    # No constant-time comparison is needed: the secret is never compared. The row is found by
    # the sha256 of what was presented, through a unique index, so response timing can reveal at
    # most how a hash compares with stored hashes, and no one can steer a token to a chosen hash.
    token = db.session.scalar(select(ApiToken).options(joinedload(ApiToken.user))
                              .where(ApiToken.token_hash == hash_token(raw)))
    if token is None or not token.live:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
        db.session.commit()
    return token


def revoke(token_id: int) -> ApiToken | None:
    """Revoke the token ``token_id`` and return it (None when there is no such token).

    Revoking twice keeps the first revocation time (and is audited once).
    """
    token = db.session.get(ApiToken, token_id)
    if token is not None and token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record("token.revoke", "token", token.id,
                     {"user": token.user.username, "label": token.label, "prefix": token.prefix})
        db.session.commit()
    return token


def tokens_for(user: User) -> list[ApiToken]:
    """Every token of ``user``, revoked ones included, oldest first."""
    return list(db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at, ApiToken.id)))


def all_tokens_query():
    """Every token with its user, newest first (the admin's token list)."""
    return (select(ApiToken).options(joinedload(ApiToken.user))
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc()))
