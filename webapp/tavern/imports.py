"""Catalogue imports: games from the Gamedrop reference CSV or from a plain CSV.

Two formats, told apart by the header (names matched case-insensitively, any punctuation):

- **reference** (Gamedrop's ``gameplays.csv``): ``game_name, release_year, console_name,
  rating, rental_cost, genres, gameplay_types``. An empty ``console_name`` is "TBD";
  ``gameplay_types`` is a Python list written as text (``"['Adventure', 'RPG']"``), read with
  ``ast.literal_eval`` (which only reads literals, never runs code). ``release_year``,
  ``rating`` and ``genres`` are not used.
- **plain**: ``name`` and ``price`` (required), ``console`` and ``gameplay`` (optional), the
  gameplay styles separated by ``|`` or ``;``.

Importing is an upsert by name (any case): a new name adds a game, a known one is updated when
anything differs and reported unchanged otherwise, so importing the same file twice changes
nothing. Styles the vocabulary lacks are created. A header that names a column the import uses
twice (``price, Price``) gets the file refused, since the import writes at once and there is
no preview to catch the wrong pick; a column named by two synonyms (``name`` and ``title``)
keeps the earlier synonym, and the result says which. Every bad row is reported with its physical
line (the header is line 1) and the good rows are kept; only a file that cannot be used at all
raises ``CatalogueFileError``. Files are capped (``MAX_ROWS``) because the import runs within
the request: 10,000 rows take well under a few seconds.

Reading CSV text (encodings, delimiters, physical line numbers, the spreadsheet-safe report)
is the pizzeria importer's code, shared rather than copied.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from webapp.auth.models import utcnow
from webapp.csv_import import (
    SNIFF_BYTES,
    Reject,
    binary_problem,
    column_list,
    decode,
    normalise_name,
    records,
    repeated_names,
    report_csv,
    sniff_delimiter,
)
from webapp.extensions import db
from webapp.tavern.models import (
    CONSOLE_MAX,
    GAME_NAME_MAX,
    PRICE_MAX,
    STYLE_NAME_MAX,
    UNKNOWN_CONSOLE,
    CatalogueImport,
    Game,
    GameplayStyle,
    game_gameplay,
    name_key,
)
from webapp.tavern.service import clean_name, to_cents

#: Data rows accepted in one file (the import runs within the request).
MAX_ROWS = 20_000
#: A gameplay cell longer than this is not a list of styles (and ``literal_eval`` on huge
#: nested input can exhaust the stack).
GAMEPLAY_CELL_MAX = 2_000
#: Raw rows are kept for the report up to this length.
RAW_MAX = 300
PREVIEW_REJECTS_MAX = 100
#: Names per ``IN (...)`` query: well under every database's parameter limit.
CHUNK = 500
SOURCE = "games"

PRICE_RE = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?", re.ASCII)
STYLE_SEPARATORS = re.compile(r"[|;]")


class CatalogueFileError(ValueError):
    """The file cannot be imported at all (no header, unknown columns); nothing was changed."""


class ImportConflict(RuntimeError):
    """Another writer saved the same games or styles meanwhile; nothing was changed."""


@dataclass(frozen=True)
class FileFormat:
    """A format: its name, and the header names accepted for each column, in order."""

    name: str
    columns: dict[str, tuple[str, ...]]
    required: tuple[str, ...]


REFERENCE = FileFormat("reference", {
    "name": ("game_name",), "console": ("console_name",), "price": ("rental_cost",),
    "gameplay": ("gameplay_types",),
}, required=("name", "console", "price", "gameplay"))
PLAIN = FileFormat("plain", {
    "name": ("name", "game", "game_name", "title"),
    "console": ("console", "console_name", "platform"),
    "price": ("price", "price_per_hour", "rental_cost", "cost"),
    "gameplay": ("gameplay", "gameplay_types", "gameplay_styles", "styles", "style"),
}, required=("name", "price"))
COLUMN_LABELS = {"name": "game's name", "console": "console", "price": "price per hour",
                 "gameplay": "gameplay styles"}
FORMAT_LABELS = {"reference": "Gamedrop reference CSV", "plain": "plain CSV"}


@dataclass(frozen=True)
class GameRow:
    """One good row. ``console``/``styles`` are None when the file has no such column."""

    line: int
    name: str
    price: Decimal
    console: str | None = None
    styles: tuple[str, ...] | None = None


@dataclass
class ParsedCatalogue:
    """What a file held: its format, good rows (one per name), bad rows, and notes."""

    file_format: str
    rows: list[GameRow] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportOutcome:
    """What importing did (or, for a dry run, would do)."""

    added: int
    updated: int
    unchanged: int
    new_styles: tuple[str, ...]


# --- Parsing ----------------------------------------------------------------------------------


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def detect_format(header: list[str]) -> tuple[FileFormat, dict[str, int], list[str]]:
    """The file's format and the position of each of its columns, from its header.

    Returns ``(format, positions, problems)``; raises CatalogueFileError when the header fits
    neither format.
    """
    names = [normalise_name(name) for name in header]
    file_format = REFERENCE if {"game_name", "rental_cost"} <= set(names) else PLAIN
    positions = {}
    for column, synonyms in file_format.columns.items():
        found = next((names.index(name) for name in synonyms if name in names), None)
        if found is not None:
            positions[column] = found
    missing = [column for column in file_format.required if column not in positions]
    if missing:
        found = ", ".join(repr(_shorten(name.strip(), 40)) for name in header[:20]) or "none"
        if file_format is REFERENCE:
            wanted = ", ".join(REFERENCE.columns[column][0] for column in missing)
            raise CatalogueFileError(f"The file looks like the Gamedrop reference CSV but lacks "
                                     f"the column(s) {wanted}. Columns found: {found}.")
        raise CatalogueFileError(
            "The file's header names neither the reference columns (game_name, console_name, "
            "rental_cost, gameplay_types) nor the plain ones (name, price, and optionally "
            f"console and gameplay). Columns found: {found}.")
    _refuse_repeated(header, names, positions)
    problems = [f"Read as a {FORMAT_LABELS[file_format.name]}."]
    explained: set[int] = set()
    for column, position in positions.items():
        note = _synonym_note(header, names, file_format.columns[column], column, position,
                             explained)
        if note:
            problems.append(note)
    unused = [name.strip() for i, name in enumerate(header)
              if i not in positions.values() and i not in explained and name.strip()]
    if unused:
        problems.append(f"Columns not used: {', '.join(_shorten(n, 40) for n in unused[:20])}.")
    return file_format, positions, problems


def _synonym_note(header: list[str], names: list[str], synonyms: tuple[str, ...], column: str,
                  position: int, explained: set[int]) -> str | None:
    """A note when other columns name ``column`` too (``name`` and ``title``): the synonym
    earlier in the list was used, and the note says so; their positions go to ``explained``."""
    others = [i for i, name in enumerate(names) if name in synonyms and name != names[position]]
    if not others:
        return None
    explained.update(others)
    listed = ", ".join(f"{_shorten(header[i].strip(), 40)!r} (column {i + 1})" for i in others)
    return (f"Line 1: {listed} also name{'s' if len(others) == 1 else ''} the "
            f"{COLUMN_LABELS[column]}; {_shorten(header[position].strip(), 40)!r} "
            f"(column {position + 1}) was used.")


def _refuse_repeated(header: list[str], names: list[str], positions: dict[str, int]) -> None:
    """CatalogueFileError when a column the import uses is named twice in the header.

    The import writes at once (there is no preview to check), so the file is refused rather
    than one of the two columns picked.
    """
    repeated = repeated_names(names)
    for position in sorted(positions.values()):
        found = repeated.get(names[position])
        if found:
            times = "twice" if len(found) == 2 else f"{len(found)} times"
            raise CatalogueFileError(
                f"Line 1 (the header) names {_shorten(header[position].strip(), 40)!r} {times} "
                f"(columns {column_list(found)}), so it is not clear which column to import. "
                "Rename or remove the others, then import the file again. Nothing was changed.")


def parse_price(text: str) -> Decimal:
    """A price per hour (``4.99`` or ``4,99``), rounded to the cent; ValueError with the reason."""
    if not text:
        raise ValueError("the price is empty")
    if PRICE_RE.fullmatch(text) is None:
        raise ValueError(f"the price is not a number: {_shorten(text)!r}")
    price = to_cents(text.replace(",", "."))
    if price < 0:
        raise ValueError(f"the price cannot be negative: {text!r}")
    if price > PRICE_MAX:
        raise ValueError(f"the price is more than {PRICE_MAX}: {_shorten(text)!r}")
    return price


def parse_styles(text: str) -> tuple[str, ...]:
    """Gameplay styles from a cell: a Python list as text (``['Arcade', 'RPG']``) or names
    separated by ``|`` or ``;``. Names are trimmed and deduplicated in any case."""
    if len(text) > GAMEPLAY_CELL_MAX:
        raise ValueError(f"the gameplay cell is longer than {GAMEPLAY_CELL_MAX} characters")
    if text.startswith("["):
        try:
            # literal_eval reads Python literals only (never calls anything): safe on input.
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ValueError(f"the gameplay list cannot be read: {_shorten(text)!r}") from None
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"the gameplay list must hold names in quotes: {_shorten(text)!r}")
        names = value
    else:
        names = STYLE_SEPARATORS.split(text)
    styles: dict[str, str] = {}
    for raw in names:
        name = clean_name(raw)
        if not name:
            continue
        if len(name) > STYLE_NAME_MAX:
            raise ValueError(f"the style {_shorten(name)!r} is longer than {STYLE_NAME_MAX} "
                             "characters")
        styles.setdefault(name_key(name), name)
    return tuple(styles.values())


def _row_values(cells: dict[str, str], errors: list[str]) -> dict:
    """The row's values; each problem found is appended to ``errors``."""
    name = clean_name(cells["name"])
    if not name:
        errors.append("the name is empty")
    elif len(name) > GAME_NAME_MAX:
        errors.append(f"the name is longer than {GAME_NAME_MAX} characters")
    values: dict = {"name": name}
    if "console" in cells:
        values["console"] = clean_name(cells["console"]) or UNKNOWN_CONSOLE
        if len(values["console"]) > CONSOLE_MAX:
            errors.append(f"the console is longer than {CONSOLE_MAX} characters")
    for column, parse in (("price", parse_price), ("gameplay", parse_styles)):
        if column not in cells:
            continue
        try:
            values["styles" if column == "gameplay" else column] = parse(cells[column].strip())
        except ValueError as error:
            errors.append(str(error))
    return values


def _data_records(text: str) -> Iterator:
    """The file's records that have content (blank lines are skipped silently)."""
    for record in records(text, sniff_delimiter(text)):
        if record.fields is None or any(cell.strip() for cell in record.fields):
            yield record


def parse_catalogue(data: bytes) -> ParsedCatalogue:
    """Games from a reference or plain CSV (see the module's docstring).

    A name seen again is a bad row (the first good one counts). Raises CatalogueFileError when
    the file has no usable header or more than ``MAX_ROWS`` rows.
    """
    problem = binary_problem(data[:SNIFF_BYTES])
    if problem:
        raise CatalogueFileError(problem)
    text, problems = decode(data)
    rows = _data_records(text)
    header = next(rows, None)
    if header is None:
        raise CatalogueFileError("The file is empty: it has no header row.")
    if header.fields is None:
        raise CatalogueFileError(f"The header (line {header.line}) cannot be read: "
                                 f"{header.error}.")
    file_format, positions, format_problems = detect_format(header.fields)
    parsed = ParsedCatalogue(file_format.name, problems=problems + format_problems)
    seen: dict[str, int] = {}
    for count, record in enumerate(rows, start=1):
        if count > MAX_ROWS:
            raise CatalogueFileError(f"The file has more than {MAX_ROWS:,} rows; split it into "
                                     "smaller files.")
        errors = [record.error] if record.fields is None else []
        values = {}
        if record.fields is not None:
            cells = {column: record.fields[i] if i < len(record.fields) else ""
                     for column, i in positions.items()}
            if any(cell.strip() for cell in record.fields[len(header.fields):]):
                errors.append(f"the row has {len(record.fields)} values but the header has "
                              f"{len(header.fields)} columns")
            values = _row_values(cells, errors)
        key = name_key(values["name"]) if values.get("name") else None
        if not errors and key in seen:
            errors.append(f"“{values['name']}” already appears on line {seen[key]}")
        if errors:
            parsed.rejects.append(Reject(record.line, "; ".join(errors),
                                         _shorten(record.raw, RAW_MAX), SOURCE))
            continue
        seen[key] = record.line
        parsed.rows.append(GameRow(line=record.line, **values))
    return parsed


# --- Applying -------------------------------------------------------------------------------


def _chunks(items: list, size: int = CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _stored_games(keys: list[str]) -> dict[str, dict]:
    """The stored games with these name keys: their values and style keys, by name key."""
    games: dict[str, dict] = {}
    for chunk in _chunks(keys):
        query = select(Game.id, Game.name, Game.name_key, Game.console, Game.price_per_hour
                       ).where(Game.name_key.in_(chunk))
        for row in db.session.execute(query):
            games[row.name_key] = {"id": row.id, "name": row.name, "console": row.console,
                                   "price": row.price_per_hour, "styles": set()}
    by_id = {game["id"]: game for game in games.values()}
    for chunk in _chunks(list(by_id)):
        query = (select(game_gameplay.c.game_id, GameplayStyle.name_key)
                 .join(GameplayStyle, GameplayStyle.id == game_gameplay.c.style_id)
                 .where(game_gameplay.c.game_id.in_(chunk)))
        for game_id, style_key in db.session.execute(query):
            by_id[game_id]["styles"].add(style_key)
    return games


def _wanted(row: GameRow, stored: dict | None) -> dict:
    """The values a game has after the row is applied (a missing column keeps what is stored)."""
    return {
        "name": row.name, "price": row.price,
        "console": row.console if row.console is not None else
        (stored["console"] if stored else UNKNOWN_CONSOLE),
        "styles": ({name_key(style) for style in row.styles} if row.styles is not None else
                   (stored["styles"] if stored else set())),
    }


def apply_catalogue(parsed: ParsedCatalogue, dry_run: bool = False,
                    add_only: bool = False) -> ImportOutcome:
    """Upsert the parsed games by name in the current transaction; the caller commits.

    With ``dry_run`` nothing is written and the outcome says what would change. With
    ``add_only`` games already stored are left as they are (counted unchanged). Raises
    ImportConflict (after rolling back) when a concurrent writer took one of the new names.
    """
    vocabulary = dict(db.session.execute(select(GameplayStyle.name_key, GameplayStyle.name)).all())
    stored = _stored_games([name_key(row.name) for row in parsed.rows])
    rows = [row for row in parsed.rows if not (add_only and name_key(row.name) in stored)]
    new_styles: dict[str, str] = {}
    for row in rows:
        for style in row.styles or ():
            if name_key(style) not in vocabulary:
                new_styles.setdefault(name_key(style), style)
    added, updated, unchanged = [], [], len(parsed.rows) - len(rows)
    for row in rows:
        current = stored.get(name_key(row.name))
        wanted = _wanted(row, current)
        if current is None:
            added.append(wanted)
        elif wanted != {key: current[key] for key in wanted}:
            updated.append({**wanted, "id": current["id"]})
        else:
            unchanged += 1
    outcome = ImportOutcome(len(added), len(updated), unchanged, tuple(new_styles.values()))
    if not dry_run:
        try:
            _write(added, updated, new_styles)
        except IntegrityError:
            db.session.rollback()
            raise ImportConflict("Other changes to the same games or styles were saved while "
                                 "importing, so nothing was imported. Import the file "
                                 "again.") from None
    return outcome


def _write(added: list[dict], updated: list[dict], new_styles: dict[str, str]) -> None:
    """Insert styles and games, update changed games, and set their styles."""
    if new_styles:
        db.session.execute(insert(GameplayStyle), [
            {"name": name, "name_key": key} for key, name in new_styles.items()])
    style_ids = dict(db.session.execute(select(GameplayStyle.name_key, GameplayStyle.id)).all())
    now = utcnow()
    game_ids: dict[str, int] = {}
    if added:
        inserted = db.session.execute(
            insert(Game).returning(Game.id, Game.name_key),
            [{"name": game["name"], "name_key": name_key(game["name"]),
              "console": game["console"], "price_per_hour": game["price"],
              "created_at": now, "updated_at": now} for game in added])
        game_ids.update({key: game_id for game_id, key in inserted})
    if updated:
        # Core, not the ORM's bulk UPDATE by primary key, which would demand each row's loaded
        # version (version_id_col); bumping the version tells an inline editor who loaded the
        # game before that it changed.
        table = Game.__table__
        db.session.execute(
            update(table).where(table.c.id == bindparam("game_id"))
            .values(version=table.c.version + 1),
            [{"game_id": game["id"], "name": game["name"], "name_key": name_key(game["name"]),
              "console": game["console"], "price_per_hour": game["price"], "updated_at": now}
             for game in updated])
        for chunk in _chunks([game["id"] for game in updated]):
            db.session.execute(delete(game_gameplay).where(game_gameplay.c.game_id.in_(chunk)))
        game_ids.update({name_key(game["name"]): game["id"] for game in updated})
    links = [{"game_id": game_ids[name_key(game["name"])], "style_id": style_ids[style]}
             for game in added + updated for style in game["styles"]]
    if links:
        db.session.execute(insert(game_gameplay), links)
    db.session.expire_all()  # games loaded earlier in this session must see the new values


def preview_json(parsed: ParsedCatalogue) -> dict:
    """What the result card shows about the file: its first rejects and notes."""
    return {
        "rejects": [{"line": r.line, "reason": r.reason}
                    for r in parsed.rejects[:PREVIEW_REJECTS_MAX]],
        "problems": parsed.problems,
    }


def import_catalogue(data: bytes, filename: str, created_by: str | None,
                     dry_run: bool = False) -> CatalogueImport:
    """Parse, apply and record an import in one transaction; returns the record.

    Raises CatalogueFileError when the file cannot be used at all and ImportConflict when a
    concurrent writer got in the way; nothing is changed in either case.
    """
    parsed = parse_catalogue(data)
    outcome = apply_catalogue(parsed, dry_run)
    record = CatalogueImport(
        created_by=created_by, filename=_basename(filename), file_format=parsed.file_format,
        dry_run=dry_run, added=outcome.added, updated=outcome.updated,
        unchanged=outcome.unchanged, reject_count=len(parsed.rejects),
        new_styles=list(outcome.new_styles), preview=preview_json(parsed),
        report=report_csv(parsed.rejects, {SOURCE: _basename(filename)}),
    )
    db.session.add(record)
    db.session.commit()
    return record


def _basename(name: str) -> str:
    """The file's own name: some browsers send a whole path (``C:\\fakepath\\games.csv``)."""
    return (name.replace("\\", "/").rsplit("/", 1)[-1] or "games.csv")[:255]
