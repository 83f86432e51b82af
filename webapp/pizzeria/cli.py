"""``flask pizzeria ...`` commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
from flask.cli import AppGroup

pizzeria_cli = AppGroup("pizzeria", help="Pizzeria nights: imports.")

FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


@pizzeria_cli.command("import")
@click.argument("paths", nargs=-1, type=FILE)
@click.option("--mode", type=click.Choice(["nightly", "exports"]), default=None,
              help="nightly: each PATH is a CSV of nights (the default). exports: give "
                   "--reservations and/or --pos instead.")
@click.option("--reservations", type=FILE, help="A reservations export (exports mode).")
@click.option("--pos", type=FILE, help="A point-of-sale export (exports mode).")
@click.option("--overwrite", is_flag=True,
              help="Overwrite the stored values of conflicting nights (default: keep them).")
@click.option("--dry-run", is_flag=True, help="Show what would change, and write nothing.")
def import_command(paths: tuple[Path, ...], mode: str | None, reservations: Path | None,
                   pos: Path | None, overwrite: bool, dry_run: bool) -> None:
    """Import nights from nightly CSVs (PATH...) or from exports (--reservations, --pos).

    Prints the counts, every conflict and every bad row with its line number, then applies
    (conflicts keep their stored values unless --overwrite). Exits with 1 only when a whole
    file cannot be used, e.g. a missing column.
    """
    from webapp.pizzeria.imports import parse_exports, parse_nightly
    from webapp.pizzeria.models import pizzeria_settings

    mode = mode or ("exports" if reservations or pos else "nightly")
    if mode == "nightly":
        if reservations or pos:
            raise click.UsageError("--reservations and --pos belong to --mode exports.")
        if not paths:
            raise click.UsageError("Give at least one nightly CSV: flask pizzeria import PATH")
        sources = [(str(path), lambda path=path: parse_nightly(path.read_bytes()))
                   for path in paths]
    else:
        if paths:
            raise click.UsageError("In exports mode give the files as --reservations PATH "
                                   "and/or --pos PATH.")
        if not (reservations or pos):
            raise click.UsageError("Give --reservations PATH, --pos PATH, or both.")
        items = sorted(pizzeria_settings().dough_item_set)
        label = " + ".join(str(p) for p in (reservations, pos) if p)
        sources = [(label, lambda: parse_exports(
            reservations.read_bytes() if reservations else None,
            pos.read_bytes() if pos else None, items))]
    failures = sum(not _import_one(label, parse, overwrite, dry_run) for label, parse in sources)
    if failures:
        raise click.exceptions.Exit(1)


def _import_one(label: str, parse: Callable, overwrite: bool, dry_run: bool) -> bool:
    """Parse, plan, print and (unless ``dry_run``) apply one source; False if it failed whole."""
    from webapp.extensions import db
    from webapp.pizzeria.imports import ImportFileError, apply_plan, plan_import

    try:
        parsed = parse()
    except ImportFileError as error:
        click.echo(f"{label}: FAILED: {error}", err=True)
        return False
    plan = plan_import(parsed.rows)
    counts = plan.counts()
    click.echo(f"{label}: {len(parsed.rows)} nights read, {parsed.reject_count} bad rows.")
    click.echo(f"  new {counts['new']}, unchanged {counts['unchanged']}, "
               f"filled in {counts['updates']}, conflicts {counts['conflicts']}")
    for problem in parsed.problems:
        click.echo(f"  note: {problem}")
    for change in plan.conflicts:
        values = ", ".join(f"{name} {old} -> {new}"
                           for name, (old, new) in change.differences.items())
        click.echo(f"  conflict {change.row.date}: {values}")
    for reject in parsed.rejects:
        where = f"{reject.source} " if reject.source != "nightly" else ""
        click.echo(f"  {where}{reject}")
    if dry_run:
        click.echo("  dry run: nothing was written.")
        return True
    result = apply_plan(plan, overwrite)
    db.session.commit()
    click.echo(f"  applied: {result.summary()}")
    return True
