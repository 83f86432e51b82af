"""The ``flask gifts ...`` group; each feature module adds its own commands to it."""

from __future__ import annotations

from flask.cli import AppGroup

gifts_cli = AppGroup("gifts", help="Gift items: imports, rules, exports.")
