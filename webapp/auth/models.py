"""The user table."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.extensions import db

USERNAME_MAX = 64


def utcnow() -> datetime:
    """Naive UTC now: SQLite and PostgreSQL then store and compare the same values."""
    return datetime.now(UTC).replace(tzinfo=None)


class User(UserMixin, db.Model):
    """A person who logs in, with exactly one role (see ``webapp.auth.roles``)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        """Deactivated accounts cannot log in or keep a session."""
        return self.active

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password`` (werkzeug's scrypt), never the password."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """True when ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    def get_id(self) -> str:
        """What the session cookie carries: the id and a stamp of the current password.

        A new password changes the stamp, so a reset ends every session opened with the old
        one (Flask-Login's "alternative token"): whoever knew it is logged out everywhere.
        """
        return f"{self.id}:{self.session_stamp()}"

    def session_stamp(self) -> str:
        """A digest of the password hash: it changes with the password, and the cookie (signed,
        not encrypted) never carries the hash itself."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:32]

    def holds_session(self, stamp: str) -> bool:
        """True when ``stamp`` (from a session cookie) was made with the current password."""
        return hmac.compare_digest(stamp, self.session_stamp())

    def __repr__(self) -> str:
        return f"<User {self.username} ({self.role})>"
