"""What a backup holds and how it comes back: the database, the active model artefacts (with
their metadata), and optionally the tavern covers and the gift uploads waiting for a job.

A restore checks everything before it changes anything. The archive must be complete and
match its manifest, its database kind must be the configured one, and its schema must be one
this code knows. Then the files are written (each one atomically) and the database comes last.
Model files are copied as bytes and never unpickled here. A worker loads them later through
``ml.store.load``, which checks their SHA-256 against the restored registry first.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from alembic.script import ScriptDirectory
from flask import current_app

from webapp.backup import database
from webapp.backup.archive import (
    FORMAT,
    FORMAT_VERSION,
    SAFE_PART,
    VerifiedArchive,
    install_file,
    sha256_file,
    unpack_verified,
    write_archive,
)
from webapp.extensions import db


class RestoreRefused(Exception):
    """The archive is sound but cannot be restored here; nothing was changed."""


@dataclass
class BackupReport:
    """What ``create_backup`` wrote, and what it had to leave out (with the reason)."""

    output: Path
    manifest: dict
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Lines for the operator."""
        manifest, size = self.manifest, self.output.stat().st_size
        lines = [f"Wrote {self.output} ({size:,} bytes, {_files(len(manifest['files']))}).",
                 f"  {_database_line(manifest)}"]
        lines += [f"  Model: {_model_line(entry)}" for entry in manifest["models"]]
        lines += [f"  {name.capitalize()}: {_files(count)}"
                  for name, count in manifest["folders"].items() if count is not None]
        return lines + [f"  NOT INCLUDED: {problem}" for problem in self.problems]


def create_backup(output: Path, covers: bool = True, uploads: bool = False,
                  all_versions: bool = False) -> BackupReport:
    """Write one archive with a consistent database copy and the artefacts it points at."""
    workdir = Path(tempfile.mkdtemp(prefix="curate-backup-"))
    try:
        snap = database.snapshot(db.engine, workdir, all_versions)
        files = {f"database/{snap.file.name}": snap.file}
        models, problems = _artefacts(snap.models, files)
        folders = {"covers": None, "uploads": None}
        for name, wanted in (("covers", covers), ("uploads", uploads)):
            if wanted:
                folders[name] = _add_folder(name, _folder(name), files, problems)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "app_version": _app_version(),
            "schema": {"revision": snap.revision, "code_head": _migration_order()[0]},
            "database": {"dialect": snap.dialect, "file": f"database/{snap.file.name}",
                         "tool": snap.tool, "tables": snap.tables},
            "models": models,
            "folders": folders,
        }
        written = write_archive(output, files, manifest)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return BackupReport(output=output, manifest=written, problems=problems)


def _artefacts(rows: list[dict], files: dict[str, Path]) -> tuple[list[dict], list[str]]:
    """Add each version's model file and metadata; a missing or altered file is left out and
    reported, so that a damaged artefact never stops the database from being backed up."""
    root, models, problems = _model_dir(), [], []
    for row in rows:
        label = f"{row['kind']} model {row['version']} ({row['status']})"
        if not (SAFE_PART.fullmatch(row["kind"]) and SAFE_PART.fullmatch(row["version"])):
            problems.append(f"{label}: not a safe file name")
            continue
        names = {f"models/{row['kind']}/{row['version']}{suffix}": suffix
                 for suffix in (".joblib", ".json")}
        paths = {name: root / row["kind"] / f"{row['version']}{suffix}"
                 for name, suffix in names.items()}
        missing = [str(path) for path in paths.values() if not path.is_file()]
        if missing:
            problems.append(f"{label}: {', '.join(missing)} missing")
        elif sha256_file(paths[f"models/{row['kind']}/{row['version']}.joblib"]) != row["sha256"]:
            problems.append(f"{label}: the model file changed after publishing (its SHA-256 "
                            "differs from the registry's)")
        else:
            files.update(paths)
            models.append({**row, "files": sorted(names)})
    return models, problems


def _add_folder(section: str, folder: Path, files: dict[str, Path], problems: list) -> int:
    """Add the folder's files; hidden names are the app's temporary files and are skipped."""
    count = 0
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.startswith(".") or not path.is_file():
            continue
        if not SAFE_PART.fullmatch(path.name):
            problems.append(f"{path}: not a safe file name")
            continue
        files[f"{section}/{path.name}"] = path
        count += 1
    return count


# --- Restore ---------------------------------------------------------------------------------


@dataclass
class RestorePlan:
    """A verified archive that may be restored into this app, and notes for the operator."""

    archive: VerifiedArchive
    notes: list[str] = field(default_factory=list)

    @property
    def manifest(self) -> dict:
        """The archive's manifest."""
        return self.archive.manifest

    def summary(self) -> str:
        """What the restore will replace, for the confirmation prompt."""
        manifest = self.manifest
        url = db.engine.url.render_as_string(hide_password=True)
        parts = [f"{len(manifest['models'])} model versions into {_model_dir()}"]
        parts += [f"{_files(len(self.archive.names(name)))} into {_folder(name)}"
                  for name in ("covers", "uploads") if self.archive.names(name)]
        return "\n".join([
            f"Verified {self.archive.source}: {_files(len(manifest['files']))}, every SHA-256 "
            "matches.",
            f"Made {manifest['created_at']} by Curate {manifest['app_version']}: "
            f"{_database_line(manifest)}",
            f"Restoring replaces every row of {url}, and writes {', '.join(parts)}.",
            "Stop the web and job workers first.",
            *self.notes,
        ])


def prepare_restore(source: Path, staging: Path) -> RestorePlan:
    """Unpack and verify ``source`` into ``staging`` and check it fits this app.

    Raises ``archive.ArchiveError`` for an archive that is damaged, truncated or altered, and
    RestoreRefused for one that is sound but does not fit (another database kind, a schema
    newer than this code). Nothing outside ``staging`` is touched.
    """
    archive = unpack_verified(source, staging)
    manifest = archive.manifest
    dialect = manifest["database"]["dialect"]
    if dialect != db.engine.dialect.name:
        raise RestoreRefused(
            f"the archive holds a {dialect} database, and this Curate is configured for "
            f"{db.engine.dialect.name}. Point DATABASE_URL at a {dialect} database to restore it")
    order = _migration_order()
    archived = manifest["schema"]["revision"]
    if archived not in order:
        raise RestoreRefused(
            f"the archive's database schema ({archived}) is newer than this code knows (its "
            f"newest is {order[0]}). Install the Curate release that made it, then restore")
    if dialect == "postgresql":
        _refuse_newer_live_schema(archived, order)
    plan = RestorePlan(archive=archive)
    if archived != order[0]:
        plan.notes.append(f"The archive's schema ({archived}) is older than this code's "
                          f"({order[0]}): run `flask --app wsgi db upgrade` after the restore.")
    return plan


def _refuse_newer_live_schema(archived: str, order: list[str]) -> None:
    """pg_restore --clean drops only what the dump holds: tables added by a later migration
    would stay behind and break the next upgrade, so restore such archives into an empty
    database instead. (SQLite replaces every page, so it needs no such check.)"""
    live = database.revision(db.engine)
    if live is None or live == archived:
        return
    if live not in order or order.index(live) < order.index(archived):
        raise RestoreRefused(
            f"the database is at schema {live}, newer than the archive's {archived}: tables "
            "from later migrations would be left behind. Restore into an empty database "
            "(dropdb and createdb), then run `flask --app wsgi db upgrade`")


def restore(plan: RestorePlan) -> list[str]:
    """Write the archive's files, then its database; return what was restored, line by line."""
    archive, manifest = plan.archive, plan.manifest
    lines = ["Restored:"]
    written = {name: _install(archive, name) for name in _file_order(archive)}
    for entry in manifest["models"]:
        state = "written" if any(written[name] for name in entry["files"]) else "already in place"
        lines.append(f"  Model: {_model_line(entry)}: {state}")
    for section in ("covers", "uploads"):
        names = archive.names(section)
        if names:
            fresh = sum(written[name] for name in names)
            lines.append(f"  {section.capitalize()}: {_files(len(names))} ({fresh} written, "
                         f"{len(names) - fresh} already in place)")
    db.session.remove()
    database.restore(db.engine, archive.path(manifest["database"]["file"]),
                     manifest["database"]["tool"])
    _check_rows(manifest["database"]["tables"])
    lines.append(f"  {_database_line(manifest)}, as in the archive")
    return lines + plan.notes + ["Start the web and job workers again."]


def _file_order(archive: VerifiedArchive) -> list[str]:
    """Model files before their metadata: a metadata file means a complete artefact."""
    names = archive.names("models")
    models = sorted(names, key=lambda name: (name.rsplit(".", 1)[0], name.endswith(".json")))
    return models + archive.names("covers") + archive.names("uploads")


def _install(archive: VerifiedArchive, name: str) -> bool:
    section, rest = name.split("/", 1)
    root = _model_dir() if section == "models" else _folder(section)
    return install_file(archive.path(name), root / PurePosixPath(rest), root)


def _check_rows(expected: dict[str, int]) -> None:
    counts = database.row_counts(db.engine)
    wrong = {name: (count, counts.get(name)) for name, count in expected.items()
             if counts.get(name) != count}
    if wrong:
        details = ", ".join(f"{name}: {got} rows, {want} expected"
                            for name, (want, got) in sorted(wrong.items()))
        raise database.DatabaseError(f"the restored database differs from the archive: {details}")


# --- Shared ----------------------------------------------------------------------------------


def _model_dir() -> Path:
    return Path(current_app.config["MODEL_DIR"])


def _folder(section: str) -> Path:
    """The configured folder for covers or gift uploads (the app's own functions decide)."""
    if section == "covers":
        from webapp.tavern.covers import cover_dir

        return cover_dir()
    from webapp.gifts.imports import upload_folder

    return upload_folder()


def _migration_order() -> list[str]:
    """Every revision this code's migrations know, newest first."""
    script = ScriptDirectory(current_app.extensions["migrate"].directory)
    return [revision.revision for revision in script.walk_revisions()]


def _app_version() -> str:
    try:
        return importlib.metadata.version("curate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _database_line(manifest: dict) -> str:
    info = manifest["database"]
    tables = {name: count for name, count in info["tables"].items()
              if count and name != "alembic_version"}
    counts = ", ".join(f"{name} {count}" for name, count in sorted(tables.items()))
    return (f"Database ({info['dialect']}, schema {manifest['schema']['revision']}): "
            f"{sum(tables.values()):,} rows ({counts})")


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def _model_line(entry: dict) -> str:
    return f"{entry['kind']} {entry['version']} ({entry['status']})"
