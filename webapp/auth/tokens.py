"""API tokens: stored hashed, shown once, revocable, acting with their user's role."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship

from webapp.auth.models import User, utcnow
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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()

    @property
    def label(self) -> str:
        """The label its creator gave it (stored in the ``name`` column)."""
        return self.name


LABEL_MAX = ApiToken.name.type.length


def hash_token(raw: str) -> str:
    """The sha256 hex digest under which the token ``raw`` is stored and looked up."""
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(user: User, label: str) -> str:
    """Create and commit a token for ``user``; return it. It is never stored, only its hash.

    Raises
    ------
    ValueError
        When ``label`` is empty or longer than ``LABEL_MAX`` characters.
    """
    label = label.strip()
    if not label or len(label) > LABEL_MAX:
        raise ValueError(f"A token label needs 1 to {LABEL_MAX} characters.")
    # 32 random bytes: far beyond guessing, so a fast unsalted hash is enough to store it.
    raw = secrets.token_urlsafe(32)
    db.session.add(ApiToken(user=user, name=label, token_hash=hash_token(raw),
                            prefix=raw[:PREFIX_LENGTH]))
    db.session.commit()
    return raw


def authenticate(raw: str) -> User | None:
    """The active user a live token ``raw`` belongs to, or None.

    Revoked tokens and the tokens of deactivated users authenticate no one. ``last_used_at`` is
    refreshed when it is older than ``LAST_USED_RESOLUTION``.
    """
    if not raw:
        return None
    # No constant-time comparison is needed: the secret is never compared. The row is found by
    # the sha256 of what was presented, through a unique index, so response timing can reveal at
    # most how a hash compares with stored hashes, and no one can steer a token to a chosen hash.
    token = db.session.scalar(select(ApiToken).options(joinedload(ApiToken.user))
                              .where(ApiToken.token_hash == hash_token(raw)))
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
        db.session.commit()
    return token.user


def revoke(token_id: int) -> ApiToken | None:
    """Revoke the token ``token_id`` and return it (None when there is no such token).

    Revoking twice keeps the first revocation time.
    """
    token = db.session.get(ApiToken, token_id)
    if token is not None and token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.commit()
    return token


def tokens_for(user: User) -> list[ApiToken]:
    """Every token of ``user``, revoked ones included, oldest first."""
    return list(db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at, ApiToken.id)))
