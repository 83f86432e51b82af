"""Work in progress (being written now)."""

from webapp.gifts import bp  # noqa: F401
