"""Configuration: embedded defaults, overridden by environment variables, then by a test dict.

The defaults run on one machine with nothing installed (SQLite under ``instance/``, jobs in a
thread). Scaling out is configuration only: ``DATABASE_URL`` for PostgreSQL, ``JOBS_BACKEND=rq``
and ``REDIS_URL`` for Redis/RQ workers.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

#: Environment variables read at start-up, with the config key each one sets.
ENV_KEYS = {
    "DATABASE_URL": "SQLALCHEMY_DATABASE_URI",
    "SECRET_KEY": "SECRET_KEY",
    "MODEL_DIR": "MODEL_DIR",
    "JOBS_BACKEND": "JOBS_BACKEND",
    "REDIS_URL": "REDIS_URL",
    "CURATE_ENV": "ENV",
    "LOGIN_RATE_LIMIT": "LOGIN_RATE_LIMIT",
    "RATELIMIT_STORAGE_URI": "RATELIMIT_STORAGE_URI",
    "PROMOTION_MARGIN": "PROMOTION_MARGIN",
    "RQ_QUEUE": "RQ_QUEUE",
    "JOB_STALE_SECONDS": "JOB_STALE_SECONDS",
    "MODEL_CHECK_SECONDS": "MODEL_CHECK_SECONDS",
    "GIFTS_CATALOGUE_SECONDS": "GIFTS_CATALOGUE_SECONDS",
    # Files every process must see (web workers and job workers, on any host): see docs/deploy.md.
    "GIFTS_IMPORT_FOLDER": "GIFTS_IMPORT_FOLDER",
    "COVER_FOLDER": "COVER_FOLDER",
    # Behind a reverse proxy: how many proxies set each X-Forwarded-* header (see security.py).
    "PROXY_FIX_X_FOR": "PROXY_FIX_X_FOR",
    "PROXY_FIX_X_PROTO": "PROXY_FIX_X_PROTO",
    "PROXY_FIX_X_HOST": "PROXY_FIX_X_HOST",
}

#: Settings read from the environment as numbers.
FLOAT_KEYS = frozenset({"PROMOTION_MARGIN", "JOB_STALE_SECONDS", "MODEL_CHECK_SECONDS",
                        "GIFTS_CATALOGUE_SECONDS"})

#: Settings read from the environment as whole numbers of at least 0.
COUNT_KEYS = frozenset({"PROXY_FIX_X_FOR", "PROXY_FIX_X_PROTO", "PROXY_FIX_X_HOST"})

JOBS_BACKENDS = ("thread", "rq")


class ConfigError(RuntimeError):
    """Raised when the app cannot start safely with the configuration it was given."""


def defaults(instance_path: str) -> dict:
    """Return the embedded defaults, with paths under the app's instance folder."""
    return {
        "ENV": "development",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{Path(instance_path) / 'curate.sqlite3'}",
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "MODEL_DIR": str(Path(instance_path) / "models"),
        "JOBS_BACKEND": "thread",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "LOGIN_RATE_LIMIT": "10 per minute",
        # In-memory limits are per worker process; point this at Redis to share them.
        "RATELIMIT_STORAGE_URI": "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "MAX_CONTENT_LENGTH": 32 * 1024 * 1024,
        "PAGE_SIZE": 25,
        "RQ_QUEUE": "curate",
        "JOB_HEARTBEAT_SECONDS": 5.0,
        # An unfinished job with no heartbeat for this long belongs to a dead worker.
        "JOB_STALE_SECONDS": 60.0,
        "JOB_TIMEOUT_SECONDS": 1800,
        # The thread backend fits models in a child process, so its web worker keeps serving;
        # training (that child, or an RQ worker) runs this much nicer than the web workers.
        "TRAIN_IN_CHILD_PROCESS": True,
        "JOB_NICE": 10,
        # A candidate is promoted when its hold-out error is at most (1 + margin) x the active's.
        "PROMOTION_MARGIN": 0.05,
        # How often each worker asks the database which model version is active.
        "MODEL_CHECK_SECONDS": 1.0,
        # How long each worker reuses the gift candidates (items, labels, history) it built.
        "GIFTS_CATALOGUE_SECONDS": 5.0,
        # Trusted X-Forwarded-For / -Proto / -Host hops; 0 ignores the header, which is right
        # unless a proxy you run sets it (anyone else could forge it to dodge the login throttle).
        "PROXY_FIX_X_FOR": 0,
        "PROXY_FIX_X_PROTO": 0,
        "PROXY_FIX_X_HOST": 0,
    }


def from_environment(environ: dict | None = None) -> dict:
    """Return the config keys set by environment variables (see ``ENV_KEYS``)."""
    environ = os.environ if environ is None else environ
    found = {key: environ[var] for var, key in ENV_KEYS.items() if environ.get(var)}
    for key in FLOAT_KEYS & found.keys():
        try:
            found[key] = float(found[key])
        except ValueError as error:
            raise ConfigError(f"{key} must be a number, not {found[key]!r}.") from error
    for key in COUNT_KEYS & found.keys():
        found[key] = parse_count(key, found[key])
    if "SQLALCHEMY_DATABASE_URI" in found:
        found["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(found["SQLALCHEMY_DATABASE_URI"])
    return found


def parse_count(key: str, text: str) -> int:
    """A whole number of at least 0 (e.g. a count of proxies), or a ConfigError naming ``key``."""
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise ConfigError(f"{key} must be a whole number of at least 0, not {text!r}.")
    return count


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written the common way (``postgres://``)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def ensure_secret_key(config: dict, instance_path: str) -> str:
    """Return the secret key, refusing to start in production without one.

    In development a random key is generated once and kept in ``instance/secret_key`` so that
    sessions survive restarts and every gunicorn worker signs cookies with the same key.
    """
    if config.get("SECRET_KEY"):
        return config["SECRET_KEY"]
    if config.get("ENV") == "production":
        raise ConfigError(
            "SECRET_KEY is not set. In production Curate refuses to start without it: "
            "set the SECRET_KEY environment variable to a long random string."
        )
    key_file = Path(instance_path) / "secret_key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when two workers start together, exactly one writes the key.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        key = secrets.token_hex(32)
        handle.write(key)
    return key


def validate(config: dict) -> None:
    """Fail at start-up, with a clear message, on settings that cannot work."""
    if config["JOBS_BACKEND"] not in JOBS_BACKENDS:
        raise ConfigError(
            f"JOBS_BACKEND must be one of {', '.join(JOBS_BACKENDS)}, "
            f"not {config['JOBS_BACKEND']!r}."
        )
    for key in sorted(COUNT_KEYS):
        if type(config[key]) is not int or config[key] < 0:  # bool is not a count either
            raise ConfigError(f"{key} must be a whole number of at least 0, not {config[key]!r}.")
