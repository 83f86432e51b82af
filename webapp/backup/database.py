"""Consistent database snapshots and restores, for SQLite and PostgreSQL.

SQLite uses the online backup API both ways. A backup is a consistent copy taken while the app
keeps writing. A restore copies the pages into the live file in one transaction, through
SQLite's own locking. Replacing the file with a rename would be unsafe: the app runs in WAL mode,
and a ``-wal`` file left from the old database would be replayed onto the new one.

PostgreSQL uses ``pg_dump --format=custom`` and ``pg_restore --clean --if-exists --no-owner
--single-transaction``. The backup reads the facts for the manifest (schema revision, row
counts, model versions) in a REPEATABLE READ transaction and gives pg_dump that transaction's
exported snapshot, so the facts and the dump describe the same moment. The restore is one
transaction: when it fails, the database is unchanged.

This module takes SQLAlchemy engines and paths, never the Flask app.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, column, create_engine, func, inspect, select, table, text
from sqlalchemy.engine import URL

#: A lock the app still holds makes pg_restore fail after this long instead of waiting forever.
RESTORE_LOCK_TIMEOUT = "30s"

MODEL_VERSION = table("model_version", column("kind"), column("version"), column("status"),
                      column("sha256"))
ALEMBIC_VERSION = table("alembic_version", column("version_num"))


class DatabaseError(Exception):
    """The database could not be backed up or restored; the message says why and what to do."""


@dataclass(frozen=True)
class Snapshot:
    """A database copy made for one backup, with the facts the manifest records."""

    dialect: str
    file: Path
    revision: str | None
    tables: dict[str, int]
    models: list[dict]
    tool: str | None = None


def snapshot(engine: Engine, workdir: Path, all_versions: bool = False) -> Snapshot:
    """Copy the database into ``workdir`` consistently, while the app may keep running.

    ``models`` lists the active model versions (every version but failed ones with
    ``all_versions``) as of the copy, so the archive holds the artefacts the copy points at.
    """
    if engine.dialect.name == "sqlite":
        return _sqlite_snapshot(engine, workdir, all_versions)
    if engine.dialect.name == "postgresql":
        return _postgres_snapshot(engine, workdir, all_versions)
    raise DatabaseError(f"backing up a {engine.dialect.name} database is not supported")


def restore(engine: Engine, dump: Path, tool: str | None = None) -> None:
    """Replace every row of the engine's database with the snapshot in ``dump``.

    ``tool`` is the manifest's record of the pg_dump that made a PostgreSQL dump. The engine's
    pooled connections are closed first, so this process holds no lock the restore waits for.
    """
    engine.dispose()
    if engine.dialect.name == "sqlite":
        _sqlite_restore(engine, dump)
    elif engine.dialect.name == "postgresql":
        _postgres_restore(engine, dump, tool)
    else:
        raise DatabaseError(f"restoring a {engine.dialect.name} database is not supported")
    engine.dispose()


def revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None for a database never migrated."""
    with engine.connect() as conn:
        return _revision(conn)


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table, for checking a restore against the manifest."""
    with engine.connect() as conn:
        return _row_counts(conn)


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.scalar(select(ALEMBIC_VERSION.c.version_num))


def _row_counts(conn: Connection) -> dict[str, int]:
    return {name: conn.scalar(select(func.count()).select_from(table(name)))
            for name in sorted(inspect(conn).get_table_names())}


def _models(conn: Connection, all_versions: bool) -> list[dict]:
    if not inspect(conn).has_table("model_version"):
        return []
    status = MODEL_VERSION.c.status
    query = select(MODEL_VERSION).where(status != "failed" if all_versions else status == "active")
    rows = conn.execute(query.order_by(MODEL_VERSION.c.kind, MODEL_VERSION.c.version))
    return [dict(row._mapping) for row in rows]


def _facts(conn: Connection, dialect: str, dump: Path, all_versions: bool,
           tool: str | None = None) -> Snapshot:
    return Snapshot(dialect=dialect, file=dump, revision=_revision(conn),
                    tables=_row_counts(conn), models=_models(conn, all_versions), tool=tool)


# --- SQLite ---------------------------------------------------------------------------------


def sqlite_path(engine: Engine) -> Path:
    """The file behind a SQLite engine (an in-memory database has none to back up)."""
    name = engine.url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        raise DatabaseError(f"the SQLite database {engine.url} is not a plain file")
    return Path(name)


def _sqlite_snapshot(engine: Engine, workdir: Path, all_versions: bool) -> Snapshot:
    source = sqlite_path(engine)
    if not source.is_file():
        raise DatabaseError(f"there is no database at {source}")
    dump = workdir / "curate.sqlite3"
    try:
        with closing(sqlite3.connect(source, timeout=30)) as live, \
                closing(sqlite3.connect(dump)) as copy:
            live.backup(copy)
            # One self-contained file: no -wal beside it in the archive.
            copy.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as error:
        raise DatabaseError(f"could not copy the SQLite database {source}: {error}") from error
    copy_engine = create_engine(f"sqlite:///{dump}")
    try:
        with copy_engine.connect() as conn:
            return _facts(conn, "sqlite", dump, all_versions)
    finally:
        copy_engine.dispose()


def _sqlite_restore(engine: Engine, dump: Path) -> None:
    target = sqlite_path(engine)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with closing(sqlite3.connect(dump)) as copy, \
                closing(sqlite3.connect(target, timeout=30)) as live:
            copy.backup(live)
    except sqlite3.Error as error:
        raise DatabaseError(f"could not restore the SQLite database {target}: {error}. "
                            "Stop the web and job workers and try again.") from error


# --- PostgreSQL -----------------------------------------------------------------------------


def pg_tool(name: str) -> tuple[str, int, str]:
    """Find a PostgreSQL client tool on PATH: its path, major version and version line."""
    path = shutil.which(name)
    if path is None:
        raise DatabaseError(
            f"{name} was not found on PATH. Install the PostgreSQL client tools of the "
            f"server's major version (Debian and Ubuntu: apt install postgresql-client).")
    result = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?", result.stdout)
    if result.returncode != 0 or match is None:
        raise DatabaseError(f"{path} --version did not report a PostgreSQL version: "
                            f"{(result.stdout + result.stderr).strip()!r}")
    return path, int(match.group(1)), f"{name} {match.group(0).split()[-1]}"


def tool_major(tool: str | None) -> int | None:
    """The major version in a manifest's tool line such as ``"pg_dump 15.20"``."""
    match = re.fullmatch(r"\S+ (\d+)(?:\.\d+)*", tool or "")
    return int(match.group(1)) if match else None


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and an environment carrying it (never on argv)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    uri = url.set(drivername="postgresql", password=None)
    return uri.render_as_string(hide_password=False), env


def dump_tool(server_major: int) -> tuple[str, str]:
    """pg_dump's path and version line, refusing one older than the server (it would abort)."""
    path, major, tool = pg_tool("pg_dump")
    if major < server_major:
        raise DatabaseError(
            f"{tool} cannot dump a PostgreSQL {server_major} server. Install the client tools "
            f"of version {server_major} or later (e.g. postgresql-client-{server_major}), or "
            "put them first on PATH.")
    return path, tool


def restore_tool(made_by: str | None) -> str:
    """pg_restore's path, refusing one older than the pg_dump that made the archive."""
    path, major, _ = pg_tool("pg_restore")
    dump_major = tool_major(made_by)
    if dump_major is not None and major < dump_major:
        raise DatabaseError(
            f"the archive was made by {made_by}, and pg_restore {major} cannot read it. Install "
            f"the PostgreSQL client tools of version {dump_major} or later.")
    return path


def run_tool(argv: list[str], env: dict[str, str], hint: str = "") -> None:
    """Run a PostgreSQL client tool; on failure raise DatabaseError with its own message."""
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = result.stderr.strip() or result.stdout.strip()
        if "version mismatch" in message or "unsupported version" in message:
            hint = (" Install the PostgreSQL client tools of the server's major version, or "
                    "put them first on PATH." + hint)
        name = Path(argv[0]).name
        raise DatabaseError(f"{name} failed (exit {result.returncode}): {message}.{hint}")


def _postgres_snapshot(engine: Engine, workdir: Path, all_versions: bool) -> Snapshot:
    dump = workdir / "curate.pgdump"
    uri, env = _libpq(engine.url)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            path, tool = dump_tool(int(conn.scalar(text("SHOW server_version_num"))) // 10000)
            exported = conn.scalar(text("SELECT pg_export_snapshot()"))
            facts = _facts(conn, "postgresql", dump, all_versions, tool)
            # The transaction stays open until pg_dump is done: it imports this snapshot.
            run_tool([path, "--format=custom", "--no-password", f"--snapshot={exported}",
                      f"--file={dump}", f"--dbname={uri}"], env)
    return facts


def _postgres_restore(engine: Engine, dump: Path, tool: str | None) -> None:
    path = restore_tool(tool)
    uri, env = _libpq(engine.url)
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c lock_timeout={RESTORE_LOCK_TIMEOUT}"
    run_tool([path, "--clean", "--if-exists", "--no-owner", "--no-privileges",
              "--single-transaction", "--exit-on-error", "--no-password", f"--dbname={uri}",
              str(dump)], env,
             " The restore ran in one transaction, so the database was not changed. If a lock "
             "timed out, stop the web and job workers and try again.")
