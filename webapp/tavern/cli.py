"""``flask tavern ...`` commands."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

tavern_cli = AppGroup("tavern", help="Tavern game catalogue: imports.")

FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


@tavern_cli.command("import")
@click.argument("path", type=FILE)
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--report", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the bad rows (file, line, reason, raw row) to this CSV file.")
def import_command(path: Path, dry_run: bool, report: Path | None) -> None:
    """Import games from PATH: the Gamedrop reference CSV or a plain CSV (name, price,
    optionally console and gameplay, styles separated by | or ;).

    Upserts by name: prints what was added, updated and left unchanged, the new styles, and
    every bad row with its line number. Exits with 1 when the file cannot be used at all.
    """
    from webapp.tavern.imports import CatalogueFileError, ImportConflict, import_catalogue

    try:
        record = import_catalogue(path.read_bytes(), path.name, "cli", dry_run=dry_run)
    except (CatalogueFileError, ImportConflict) as error:
        click.echo(f"{path}: FAILED: {error}", err=True)
        raise click.exceptions.Exit(1) from None
    for note in record.preview.get("problems", []):
        click.echo(f"  note: {note}")
    click.echo(f"{path}: {record.added} added, {record.updated} updated, "
               f"{record.unchanged} unchanged, {record.reject_count} bad rows.")
    if record.new_styles:
        verb = "would be created" if dry_run else "created"
        click.echo(f"  new styles {verb}: {', '.join(record.new_styles)}")
    for reject in record.preview.get("rejects", []):
        click.echo(f"  line {reject['line']}: {reject['reason']}")
    if record.reject_count > len(record.preview.get("rejects", [])):
        click.echo("  … and more: see --report.")
    if report is not None:
        report.write_text(record.report, encoding="utf-8-sig", newline="")
        click.echo(f"  bad rows written to {report}")
    if dry_run:
        click.echo("  dry run: nothing was changed.")
