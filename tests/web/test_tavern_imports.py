"""Catalogue imports: both formats, bad rows by line, idempotent re-import, the report, the
upload flow, the CLI and the demo loader."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from webapp.extensions import db
from webapp.tavern import imports, service
from webapp.tavern.demo import DEMO_GAMES, load_demo_games
from webapp.tavern.forms import MAX_IMPORT_BYTES
from webapp.tavern.imports import (
    CatalogueFileError,
    import_catalogue,
    parse_catalogue,
    parse_styles,
)
from webapp.tavern.models import CatalogueImport, Game, GameplayStyle

REFERENCE = DEMO_GAMES.read_bytes()

PLAIN = (
    "Name,PRICE,Console,Gameplay\n"                  # 1: headers in any case
    "Tetris,2.99,Gameboy,Puzzle\n"                   # 2
    "Doom,\"4,50\",PC,shooter|  Action \n"           # 3: decimal comma; shooter = Shooter
    ",3.00,PC,Puzzle\n"                              # 4: bad, no name
    "Quake,cheap,PC,Shooter\n"                       # 5: bad price
    "\n"                                             # 6: blank, skipped
    "Myst,-1,Mac,Puzzle\n"                           # 7: bad, negative
    "tetris,1.00,NES,Puzzle\n"                       # 8: bad, repeated name
    "Braid,5,,Puzzle;Platform;puzzle\n"              # 9: no console = TBD, styles deduplicated
    "=HYPERLINK(\"http://evil\"),1,PC\n"             # 10: good (a name is a name), but a formula
    "Lemmings,3,Amiga,Puzzle,extra\n"                # 11: bad, one value too many
)


def upload(client, content: bytes, filename: str = "games.csv", **fields):
    """POST the import form; the body is encoded in memory (see the pizzeria import tests)."""
    boundary, body = encode_multipart(
        {"games": FileStorage(io.BytesIO(content), filename), **fields})
    return client.post("/tavern/import", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


def catalogue(app) -> dict[str, tuple]:
    with app.app_context():
        return {game.name: (game.console, game.price_per_hour, game.style_names, game.active)
                for game in db.session.scalars(select(Game))}


def vocabulary(app) -> list[str]:
    with app.app_context():
        return sorted(db.session.scalars(select(GameplayStyle.name)))


# --- Parsing ----------------------------------------------------------------------------------


def test_the_reference_csv_gives_92_games_and_18_styles(app):
    parsed = parse_catalogue(REFERENCE)
    assert parsed.file_format == "reference" and not parsed.rejects
    assert len(parsed.rows) == 92
    with app.app_context():
        record = import_catalogue(REFERENCE, "gamedrop_gameplays.csv", "test")
        assert (record.added, record.updated, record.unchanged, record.reject_count) == (
            92, 0, 0, 0)
        assert len(record.new_styles) == 18
        assert service.style_vocabulary()[:4] == ("Adventure", "Arcade", "Brawler",
                                                  "Card & Board Game")
    games = catalogue(app)
    assert len(games) == 92 and len(vocabulary(app)) == 18
    assert games["Metroid II: Return of Samus"] == (
        "Gameboy", Decimal("3.99"), ("Adventure", "Platform", "Shooter"), True)
    assert games["Super Mario Party"][0] == "TBD"  # an empty console_name
    assert sum(console == "TBD" for console, *_ in games.values()) == 11


def test_the_reference_games_fill_the_default_budget_buckets(app, client, auth):
    """With the reference model's thresholds (cheap below 5, premium from 20)."""
    with app.app_context():
        load_demo_games()
        assert service.bucket_counts(service.tavern_settings()) == {
            "cheap": 46, "standard": 29, "premium": 17}
    auth.login("host")
    page = client.get("/tavern/games").data
    assert b'<strong class="match-count">92</strong>' in page
    assert b'data-bucket="premium">17<' in page


def test_a_re_import_changes_nothing_and_says_so(app):
    with app.app_context():
        import_catalogue(REFERENCE, "first.csv", "test")
        again = import_catalogue(REFERENCE, "again.csv", "test")
        assert (again.added, again.updated, again.unchanged, again.new_styles) == (0, 0, 92, [])
        changed = REFERENCE.replace(b"Ms. Pac-Man,1982,Atari 2600,3.6,4.99",
                                    b"Ms. Pac-Man,1982,Atari 2600,3.6,5.49")
        third = import_catalogue(changed, "third.csv", "test")
        assert (third.added, third.updated, third.unchanged) == (0, 1, 91)
    assert catalogue(app)["Ms. Pac-Man"][1] == Decimal("5.49")


def test_plain_csv_keeps_good_rows_and_reports_bad_ones_by_line(app):
    with app.app_context():
        service.save_style(GameplayStyle(), "Shooter")
        record = import_catalogue(PLAIN.encode(), "games.csv", "test")
        assert record.file_format == "plain"
        assert (record.added, record.updated, record.unchanged, record.reject_count) == (
            4, 0, 0, 5)
        assert record.new_styles == ["Puzzle", "Action", "Platform"]  # Shooter existed
        rejects = [(r["line"], r["reason"]) for r in record.preview["rejects"]]
    assert rejects == [
        (4, "the name is empty"),
        (5, "the price is not a number: 'cheap'"),
        (7, "the price cannot be negative: '-1'"),
        (8, "“tetris” already appears on line 2"),
        (11, "the row has 5 values but the header has 4 columns"),
    ]
    games = catalogue(app)
    assert games["Doom"] == ("PC", Decimal("4.50"), ("Action", "Shooter"), True)
    assert games["Braid"] == ("TBD", Decimal("5.00"), ("Platform", "Puzzle"), True)
    assert games["Tetris"][:2] == ("Gameboy", Decimal("2.99"))


def test_the_report_has_line_numbers_and_neutralises_formulas(app):
    content = PLAIN + "@SUM(A1),1,PC\n-2+3,nope,PC\n"
    with app.app_context():
        record = import_catalogue(content.encode(), "games.csv", "test")
        rows = list(csv.reader(io.StringIO(record.report)))
    assert rows[0] == ["file", "line", "reason", "raw_row"]
    assert [row[1] for row in rows[1:]] == ["4", "5", "7", "8", "11", "13"]
    assert rows[-1] == ["games.csv", "13", "the price is not a number: 'nope'", "'-2+3,nope,PC"]
    assert rows[3][3] == "Myst,-1,Mac,Puzzle"


@pytest.mark.parametrize(("text", "styles"), [
    ("['Adventure', 'RPG']", ("Adventure", "RPG")),
    ("Puzzle | Arcade", ("Puzzle", "Arcade")),
    ("Puzzle;Arcade;;", ("Puzzle", "Arcade")),
    ("['RPG', 'rpg', ' RPG ']", ("RPG",)),
    ("Card & Board Game", ("Card & Board Game",)),
    ("('Arcade',)", ("('Arcade',)",)),  # only a cell starting with [ is read as a list
    ("", ()),
])
def test_gameplay_cells_in_both_notations(text, styles):
    assert parse_styles(text) == styles


@pytest.mark.parametrize(("text", "reason"), [
    ("[__import__('os').system('touch /tmp/pwned')]", "the gameplay list cannot be read"),
    ("['Adventure', 'RPG'", "the gameplay list cannot be read"),
    ("[1, 2]", "the gameplay list must hold names in quotes"),
    ("[['nested']]", "the gameplay list must hold names in quotes"),
    ("[" * 5000, "the gameplay cell is longer than 2000 characters"),
    ("['" + "x" * 61 + "']", "is longer than 60 characters"),
])
def test_gameplay_that_is_not_a_list_of_names_is_a_bad_row(text, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_styles(text)


@pytest.mark.parametrize(("content", "message"), [
    (b"game_name,rental_cost\nTetris,2\n",
     "looks like the Gamedrop reference CSV but lacks the column(s) console_name, "
     "gameplay_types. Columns found: 'game_name', 'rental_cost'."),
    (b"title,console\nTetris,Gameboy\n", "names neither the reference columns"),
    (b"\n ,, \n\n", "The file is empty: it has no header row."),
])
def test_files_that_cannot_be_used_at_all(content, message):
    with pytest.raises(CatalogueFileError, match=re.escape(message)):
        parse_catalogue(content)


def test_a_file_with_too_many_rows_is_refused_whole(monkeypatch):
    monkeypatch.setattr(imports, "MAX_ROWS", 3)
    parse_catalogue(b"name,price\na,1\nb,1\nc,1\n")
    with pytest.raises(CatalogueFileError, match="more than 3 rows"):
        parse_catalogue(b"name,price\na,1\nb,1\nc,1\nd,1\n")


def test_a_plain_file_without_console_or_gameplay_keeps_the_stored_ones(app):
    with app.app_context():
        import_catalogue(REFERENCE, "reference.csv", "test")
        record = import_catalogue(b"NAME;Price\nChrono Quest;1.50\nAsteroids;2.99\n"
                                  b"tetris;17.99\n", "prices.csv", "test")
        assert (record.added, record.updated, record.unchanged) == (1, 1, 1)
    games = catalogue(app)
    assert games["Asteroids"][:3] == ("Atari 2600", Decimal("2.99"), ("Shooter",))  # untouched
    assert games["Chrono Quest"] == ("TBD", Decimal("1.50"), (), True)
    # The file's spelling of the name wins; console and styles stay.
    assert games["tetris"] == ("Gameboy", Decimal("17.99"), ("Arcade", "Puzzle"), True)


def test_an_import_keeps_a_deactivated_game_inactive(app):
    with app.app_context():
        import_catalogue(REFERENCE, "reference.csv", "test")
        service.set_active(db.session.scalar(select(Game).where(Game.name == "Asteroids")), False)
        import_catalogue(REFERENCE.replace(b"Asteroids,1981,Atari 2600,3.6,2.99",
                                           b"Asteroids,1981,Atari 2600,3.6,3.49"), "r.csv", "t")
    assert catalogue(app)["Asteroids"][1:] == (Decimal("3.49"), ("Shooter",), False)


def test_a_dry_run_changes_nothing(app):
    with app.app_context():
        record = import_catalogue(PLAIN.encode(), "games.csv", "test", dry_run=True)
        assert (record.dry_run, record.added, record.reject_count) == (True, 4, 5)
        # A new style is spelt as the file first spells it.
        assert record.new_styles == ["Puzzle", "shooter", "Action", "Platform"]
    assert catalogue(app) == {} and vocabulary(app) == []


def test_a_concurrent_writer_makes_the_import_fail_whole(app, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    def clash(*args):
        db.session.add(GameplayStyle(name="Puzzle", name_key="puzzle"))
        db.session.flush()
        raise IntegrityError("INSERT", {}, Exception("unique"))

    monkeypatch.setattr(imports, "_write", clash)
    with app.app_context(), pytest.raises(imports.ImportConflict, match="nothing was imported"):
        import_catalogue(PLAIN.encode(), "games.csv", "test")
    assert vocabulary(app) == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CatalogueImport)) == 0


# --- The upload flow ----------------------------------------------------------------------------


def test_import_page_has_the_form_and_the_history(client, auth):
    auth.login("host")
    page = client.get("/tavern/import").data
    assert b"<html" in page and b'id="import-form"' in page and b"No imports yet." in page
    assert b"at most 5 MB and 20,000 games per file" in page


def test_htmx_upload_shows_the_result_and_refreshes_the_list(app, htmx_client, auth):
    auth.login("staff")
    response = upload(htmx_client, PLAIN.encode())
    assert response.status_code == 201
    body = response.data.decode()
    assert body.lstrip().startswith('<section id="import-result"')
    assert '<dd data-count="added">4</dd>' in body and '<dd data-count="rejects">5</dd>' in body
    assert "line 7: the price cannot be negative: &#39;-1&#39;" in body
    assert 'id="import-form" class="card" hx-swap-oob="true"' in body  # a fresh form
    import_id = re.search(r'data-import="([0-9a-f]{32})"', body).group(1)
    assert response.headers["HX-Push-Url"] == f"/tavern/import/{import_id}"
    triggers = response.headers["HX-Trigger"]
    assert "tavern-imports-changed" in triggers and "games-changed" in triggers
    history = htmx_client.get("/tavern/import").data
    assert history.lstrip().startswith(b'<section id="import-history"')
    assert f'data-import="{import_id}"'.encode() in history
    report = htmx_client.get(f"/tavern/import/{import_id}/report.csv")
    assert report.mimetype == "text/csv" and report.data.startswith("\ufeff".encode())
    assert "attachment" in report.headers["Content-Disposition"]
    assert b"'=HYPERLINK" not in report.data  # line 10 was a good row
    assert b"11,the row has 5 values" in report.data


def test_plain_upload_redirects_to_the_result_page(app, client, auth):
    auth.login("host")
    response = upload(client, REFERENCE, "gamedrop_gameplays.csv", dry_run="y")
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).data
    assert b"A check only: nothing was changed." in page
    assert b"Gamedrop reference CSV" in page and b'data-count="added">92<' in page
    assert b"New styles it would create" in page and b"Download the bad rows" not in page
    assert catalogue(app) == {}


@pytest.mark.parametrize(("content", "filename", "message"), [
    (b"", "games.csv", b"The file is empty."),
    (b"name,price\nTetris,2\n", "games.xlsx", b"Only .csv and .txt files can be imported."),
    (b"x" * (MAX_IMPORT_BYTES + 1), "big.csv", b"The file is larger than 5 MB"),
    (b"title,cost_in_cents\nTetris,299\n", "games.csv", b"names neither the reference columns"),
])
def test_unusable_uploads_are_422_on_the_form(app, htmx_client, auth, content, filename,
                                              message):
    auth.login("staff")
    response = upload(htmx_client, content, filename)
    assert response.status_code == 422 and message in response.data
    assert response.headers["HX-Retarget"] == "#import-form"
    assert response.data.lstrip().startswith(b'<section id="import-form"')
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CatalogueImport)) == 0


def test_no_file_is_422_and_without_javascript_shows_the_page(client, auth):
    auth.login("host")
    response = client.post("/tavern/import", data={})
    assert response.status_code == 422 and b"<html" in response.data
    assert b"Choose a file to upload." in response.data


def test_unknown_imports_are_404(client, auth):
    auth.login("host")
    assert client.get("/tavern/import/" + "0" * 32).status_code == 404
    assert client.get("/tavern/import/" + "0" * 32 + "/report.csv").status_code == 404


# --- CLI and demo ---------------------------------------------------------------------------------


def test_cli_import_prints_counts_styles_and_bad_lines(app, runner, tmp_path):
    path = tmp_path / "games.csv"
    path.write_text(PLAIN)
    report = tmp_path / "rejects.csv"
    result = runner.invoke(args=["tavern", "import", str(path), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "4 added, 0 updated, 0 unchanged, 5 bad rows." in result.output
    assert "new styles created: Puzzle, shooter, Action, Platform" in result.output
    assert "line 8: “tetris” already appears on line 2" in result.output
    assert "note: Read as a plain CSV." in result.output
    assert report.read_text(encoding="utf-8-sig").splitlines()[1].startswith("games.csv,4,")
    again = runner.invoke(args=["tavern", "import", str(path), "--dry-run"])
    assert "0 added, 0 updated, 4 unchanged, 5 bad rows." in again.output
    assert "dry run: nothing was changed." in again.output


def test_cli_import_fails_with_1_for_an_unusable_file(app, runner, tmp_path):
    path = tmp_path / "games.csv"
    path.write_text("title\nTetris\n")
    result = runner.invoke(args=["tavern", "import", str(path)])
    assert result.exit_code == 1 and "FAILED: The file's header names neither" in result.output


def test_the_demo_loader_is_idempotent_and_keeps_staff_changes(app):
    with app.app_context():
        assert load_demo_games() == 92
        tetris = db.session.scalar(select(Game).where(Game.name == "Asteroids"))
        service.save_game(tetris, "Asteroids", "Atari 2600", Decimal("9.99"), [])
        assert load_demo_games() == 0
    assert catalogue(app)["Asteroids"][1:3] == (Decimal("9.99"), ())
    assert len(catalogue(app)) == 92 and len(vocabulary(app)) == 18


def test_the_demo_file_is_the_reference_file_byte_for_byte():
    import hashlib

    # sha256 of gamedrop/priv/repo/gameplays.csv at the credited commit (see its README).
    assert hashlib.sha256(DEMO_GAMES.read_bytes()).hexdigest() == (
        "f9a878e045e804ad9f44ad75071b7d876d8ce3f1e8cce904cecb7360c562dec2")
    readme = (DEMO_GAMES.parent / "README.md").read_text()
    assert "`gamedrop_gameplays.csv`" in readme
