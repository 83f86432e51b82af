"""Flask extensions, created unbound here and bound to an app in ``create_app``."""

from __future__ import annotations

from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase
from werkzeug.routing import IntegerConverter

# Named constraints let Alembic alter them later, which SQLite's batch mode needs.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base whose metadata carries the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


#: The largest id a row can have: ids are INTEGER columns, 32 bits on PostgreSQL. A larger
#: number from a URL or a form matches nothing, and the database refuses to even compare it
#: (PostgreSQL: "integer out of range"; SQLite past 64 bits: OverflowError): a 500 unless
#: refused first.
MAX_ID = 2**31 - 1
#: The largest page number a URL may ask for: far past any real list, while its OFFSET still fits
#: the 64-bit integers databases count rows with (``?page=`` with 20 digits was a 500).
MAX_PAGE = 10**9


class Database(SQLAlchemy):
    """Flask-SQLAlchemy, with the page number a URL asks for capped at ``MAX_PAGE``."""

    def paginate(self, select, *, page: int | None = None, **kwargs):
        """Flask-SQLAlchemy's ``paginate``; a page past ``MAX_PAGE`` is ``MAX_PAGE`` (empty)."""
        if page is not None:
            page = min(page, MAX_PAGE)
        return super().paginate(select, page=page, **kwargs)


db = Database(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()
htmx = HTMX()
limiter = Limiter(key_func=get_remote_address)


class IdConverter(IntegerConverter):
    """Flask's ``<int:...>`` URL converter, but an id past ``MAX_ID`` does not match (404).

    Such an id names no row, and the database cannot even compare it: without the bound,
    ``/pizzeria/nights/9223372036854775808/delete`` was a 500 (found by the form fuzzing).
    """

    def __init__(self, url_map, *args, **kwargs) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)
