"""``flask backup`` and ``flask restore``: the database and the active model artefacts in one
archive, restored only after every file in it has been verified (see docs/deploy.md)."""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from webapp.backup import service
from webapp.backup.archive import ArchiveError
from webapp.backup.database import DatabaseError


def default_name() -> str:
    """``curate-backup-<UTC time>.tar.gz``: sorts by time, safe in any shell."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"curate-backup-{stamp}.tar.gz"


def archive_path(output: str | None) -> Path:
    """The archive's path: ``output``, or a dated name inside it when it names a folder."""
    if not output:
        return Path(default_name())
    if output.endswith(("/", os.sep)) or Path(output).is_dir():
        return Path(output) / default_name()
    return Path(output)


@click.command("backup")
@click.option("--output", "-o", type=click.Path(),
              help="The archive to write, or a folder (existing, or ending in /) to write it "
                   "into; default: curate-backup-<UTC time>.tar.gz here.")
@click.option("--covers/--no-covers", default=True, show_default=True,
              help="Include the tavern covers (COVER_FOLDER).")
@click.option("--uploads/--no-uploads", default=False, show_default=True,
              help="Include gift uploads waiting for their import job (GIFTS_IMPORT_FOLDER).")
@click.option("--all-versions", is_flag=True,
              help="Include every model version but failed ones, so rollbacks work after a "
                   "restore (default: only the active version of each kind).")
@click.option("--quiet", "-q", is_flag=True,
              help="Print nothing unless something went wrong (for cron).")
@with_appcontext
def backup_command(output: str | None, covers: bool, uploads: bool, all_versions: bool,
                   quiet: bool) -> None:
    """Write the database, the active models and the covers into one .tar.gz archive.

    Safe while the app runs: the database copy is consistent. The archive (mode 0600) holds
    password and token hashes: keep it where only operators can read and write.
    """
    try:
        report = service.create_backup(archive_path(output), covers=covers, uploads=uploads,
                                       all_versions=all_versions)
    except (ArchiveError, DatabaseError, OSError, SQLAlchemyError) as error:
        raise click.ClickException(f"Backup failed, no archive was written: {error}") from error
    for line in report.lines():
        if not quiet or report.problems:
            click.echo(line)
    if report.problems:
        raise click.ClickException(f"The archive was written, but {len(report.problems)} "
                                   "item(s) could not be included (listed above).")


@click.command("restore")
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def restore_command(archive: Path, yes: bool) -> None:
    """Restore the database, models and files from ARCHIVE, made by `flask backup`.

    Every file is checked against the archive's manifest before anything changes.
    """
    with tempfile.TemporaryDirectory(prefix="curate-restore-") as staging:
        try:
            plan = service.prepare_restore(archive, Path(staging))
        except (ArchiveError, service.RestoreRefused, SQLAlchemyError) as error:
            raise click.ClickException(f"Refused: {error}. Nothing was changed.") from error
        click.echo(plan.summary())
        if not yes:
            click.confirm("Restore now?", abort=True)
        try:
            lines = service.restore(plan)
        except (ArchiveError, DatabaseError, OSError, SQLAlchemyError) as error:
            raise click.ClickException(f"Restore failed: {error}") from error
    for line in lines:
        click.echo(line)
