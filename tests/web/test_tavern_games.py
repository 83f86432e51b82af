"""The game catalogue: list, search, filters, add, inline edit, (de)activate, delete + undo,
budget buckets, and the plain-data accessors for the ML bridge."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.tavern import service
from webapp.tavern.models import Game, GamePick, GameplayStyle, tavern_settings


@pytest.fixture(autouse=True)
def private_instance(app, tmp_path, monkeypatch):
    """Covers go to a temporary instance folder, never the developer's own."""
    monkeypatch.setattr(app, "instance_path", str(tmp_path / "instance"))


def add_style(app, name: str) -> int:
    with app.app_context():
        style = service.style_by_name(name) or service.save_style(GameplayStyle(), name)
        return style.id


def add_game(app, name: str, price, styles=(), console="Switch", active=True) -> int:
    style_ids = [add_style(app, style) for style in styles]
    with app.app_context():
        game = service.save_game(Game(active=active), name, console, Decimal(str(price)),
                                 style_ids)
        return game.id


def stored(app, game_id: int) -> Game | None:
    with app.app_context():
        game = db.session.get(Game, game_id)
        if game is not None:
            game.style_names  # load the styles before the session goes  # noqa: B018
            db.session.expunge(game)
        return game


@pytest.fixture
def catalogue(app):
    """Four games across the three buckets, one inactive."""
    return {
        "zelda": add_game(app, "The Legend of Zelda", "24.99", ["Adventure", "RPG"]),
        "tetris": add_game(app, "Tetris", "2.99", ["Puzzle"], console="Gameboy"),
        "mario": add_game(app, "Super Mario Odyssey", "7.99", ["Platform", "Adventure"]),
        "pong": add_game(app, "Pong", "1.00", ["Arcade"], active=False),
    }


def row_names(html: bytes) -> list[str]:
    return re.findall(r'class="game-row[^"]*" data-name="([^"]+)"', html.decode())


def test_the_landing_page_is_the_front_desk(client, auth):
    auth.login("host")
    response = client.get("/tavern/")
    assert response.status_code == 200
    assert b"What should they play?" in response.data and b'href="/tavern/games"' in response.data


def test_catalogue_lists_games_with_price_bucket_styles_and_status(client, auth, catalogue):
    auth.login("staff")
    page = client.get("/tavern/games").data
    assert b"<html" in page and b"Game catalogue" in page
    assert row_names(page) == ["Pong", "Super Mario Odyssey", "Tetris", "The Legend of Zelda"]
    zelda = page.split(b'data-name="The Legend of Zelda"')[1].split(b"</tr>")[0]
    assert b"24.99" in zelda and b">Premium<" in zelda
    assert b'<span class="chip">Adventure</span><span class="chip">RPG</span>' in zelda
    pong = page.split(b'data-name="Pong"')[1].split(b"</tr>")[0]
    assert b">inactive<" in pong and b">Activate<" in pong and b"no cover" in pong
    # Bucket counts are of active games: Pong (cheap) is inactive.
    assert b'data-bucket="cheap">1<' in page and b'data-bucket="standard">1<' in page
    assert b'data-bucket="premium">1<' in page
    assert b'href="/tavern/static/tavern.css"' in page


def test_search_is_case_insensitive_and_takes_wildcards_literally(app, htmx_client, auth,
                                                                   catalogue):
    add_game(app, "100% Orange Juice", "3.00")
    add_game(app, "1000 Orange Juice", "3.00")
    auth.login("host")
    response = htmx_client.get("/tavern/games?q=  zELDa ")
    assert response.status_code == 200 and b"<html" not in response.data
    assert response.data.lstrip().startswith(b'<div id="game-results"')
    assert "HX-Request" in response.headers["Vary"]
    assert row_names(response.data) == ["The Legend of Zelda"]
    assert row_names(htmx_client.get("/tavern/games?q=0%25").data) == ["100% Orange Juice"]
    assert b"No game matches." in htmx_client.get("/tavern/games?q=zzz").data


@pytest.mark.parametrize(("query", "names"), [
    ("style=adventure", ["Super Mario Odyssey", "The Legend of Zelda"]),
    ("style=Adventure&budget=premium", ["The Legend of Zelda"]),
    ("budget=cheap", ["Pong", "Tetris"]),
    ("budget=standard", ["Super Mario Odyssey"]),
    ("status=inactive", ["Pong"]),
    ("status=active&budget=cheap", ["Tetris"]),
    ("style=NoSuchStyle", ["Pong", "Super Mario Odyssey", "Tetris", "The Legend of Zelda"]),
    ("budget=luxury&status=maybe", ["Pong", "Super Mario Odyssey", "Tetris",
                                    "The Legend of Zelda"]),
])
def test_filters_by_style_budget_and_status(htmx_client, auth, catalogue, query, names):
    auth.login("staff")
    response = htmx_client.get(f"/tavern/games?{query}")
    assert response.status_code == 200
    assert row_names(response.data) == names


def test_pagination_keeps_the_filters(app, htmx_client, client, auth):
    for number in range(30):
        add_game(app, f"Game {number:02d}", "3.00", ["Arcade"])
    auth.login("host")
    first = htmx_client.get("/tavern/games?style=Arcade").data
    assert len(row_names(first)) == 25 and b"Page 1 of 2" in first
    assert b"page=2&amp;style=Arcade" in first
    second = htmx_client.get("/tavern/games?style=Arcade&page=2").data
    assert row_names(second) == [f"Game {number}" for number in range(25, 30)]
    past_the_end = client.get("/tavern/games?style=Arcade&page=99")
    assert past_the_end.status_code == 200 and b"There is nothing on this page." in past_the_end.data
    assert b'href="/tavern/games?style=Arcade">Go to the first page' in past_the_end.data


def test_add_a_game(app, htmx_client, auth):
    rpg, puzzle = add_style(app, "RPG"), add_style(app, "Puzzle")
    auth.login("staff")
    response = htmx_client.post("/tavern/games", data={
        "name": "  Chrono   Trigger ", "console": "", "price_per_hour": "4.995",
        "styles": [str(rpg), str(puzzle)]})
    assert response.status_code == 201
    assert b"Added \xe2\x80\x9cChrono Trigger\xe2\x80\x9d." in response.data
    assert response.data.lstrip().startswith(b'<section id="game-form"')
    assert "games-changed" in response.headers["HX-Trigger"]
    with app.app_context():
        game = db.session.scalar(select(Game))
        assert (game.name, game.console, game.price_per_hour, game.active) == (
            "Chrono Trigger", "TBD", Decimal("5.00"), True)  # rounded half up to the cent
        assert game.style_names == ("Puzzle", "RPG")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("name", "   ", b"Give the game&#39;s name."),
    ("name", "x" * 201, b"Field cannot be longer than 200 characters."),
    ("console", "c" * 101, b"Field cannot be longer than 100 characters."),
    ("price_per_hour", "", b"Give the price per hour."),
    ("price_per_hour", "cheap", b"Not a valid decimal value."),
    ("price_per_hour", "-1", b"Give a price between 0 and 9999.99."),
    ("price_per_hour", "1e9", b"Give a price between 0 and 9999.99."),
    ("price_per_hour", "NaN", b"Give a number, such as 4.99."),
    ("price_per_hour", "Infinity", b"Give a number, such as 4.99."),
    ("styles", "999999", b"is not a valid choice"),
    ("styles", "rpg", b"Invalid choice(s)"),
])
def test_invalid_games_are_refused_with_422(app, htmx_client, auth, field, value, message):
    auth.login("host")
    data = {"name": "Tetris", "console": "Gameboy", "price_per_hour": "2.99", field: value}
    response = htmx_client.post("/tavern/games", data=data)
    assert response.status_code == 422
    assert message in response.data
    assert b'aria-invalid="true"' in response.data
    with app.app_context():
        assert db.session.scalar(select(Game)) is None


def test_a_name_is_taken_whatever_its_case_and_spacing(app, htmx_client, auth, catalogue):
    auth.login("staff")
    response = htmx_client.post("/tavern/games", data={"name": "the  legend of ZELDA",
                                                       "price_per_hour": "3"})
    assert response.status_code == 422
    assert "There is already a game called “the legend of ZELDA”.".encode() in response.data
    with app.app_context():
        assert len(db.session.scalars(select(Game)).all()) == 4


def test_invalid_plain_post_shows_the_whole_page_with_the_errors(client, auth, catalogue):
    auth.login("staff")
    response = client.post("/tavern/games", data={"name": "", "price_per_hour": "2"})
    assert response.status_code == 422
    assert b"<html" in response.data and b"Give the game&#39;s name." in response.data
    assert b'data-name="Tetris"' in response.data


def test_plain_post_redirects_back_to_the_catalogue(client, auth):
    auth.login("staff")
    response = client.post("/tavern/games", data={"name": "Doom", "price_per_hour": "3"})
    assert response.status_code == 303 and response.headers["Location"] == "/tavern/games"
    assert "“Doom” added.".encode() in client.get("/tavern/games").data


def test_edit_a_row_in_place(app, htmx_client, auth, catalogue):
    auth.login("host")
    tetris, puzzle = catalogue["tetris"], add_style(app, "Puzzle")
    arcade = add_style(app, "Arcade")
    edit = htmx_client.get(f"/tavern/games/{tetris}/edit")
    assert edit.status_code == 200 and b"<html" not in edit.data
    assert edit.data.lstrip().startswith(f'<tr id="game-{tetris}" class="game-row editing"'.encode())
    assert f'form="game-form-{tetris}"'.encode() in edit.data
    assert f'<option selected value="{puzzle}">Puzzle</option>'.encode() in edit.data
    assert b'value="2.99"' in edit.data and b"Upload cover" in edit.data
    assert b'name="version" value="1"' in edit.data  # optimistic locking (test_edit_conflicts)
    response = htmx_client.post(f"/tavern/games/{tetris}", data={
        "name": "Tetris DX", "console": "Gameboy Color", "price_per_hour": "5",
        "styles": [str(puzzle), str(arcade)], "version": "1"})
    assert response.status_code == 200
    assert response.data.lstrip().startswith(f'<tr id="game-{tetris}" class="game-row"'.encode())
    assert b">Standard<" in response.data  # 5.00 is no longer cheap
    assert "game-counts-changed" in response.headers["HX-Trigger"]
    game = stored(app, tetris)
    assert (game.name, game.console, game.price_per_hour, game.style_names) == (
        "Tetris DX", "Gameboy Color", Decimal("5.00"), ("Arcade", "Puzzle"))
    view = htmx_client.get(f"/tavern/games/{tetris}")  # what Escape asks for
    assert view.status_code == 200 and b"editing" not in view.data


def test_renaming_a_game_to_another_case_of_its_own_name_is_fine(app, htmx_client, auth,
                                                                  catalogue):
    auth.login("staff")
    response = htmx_client.post(f"/tavern/games/{catalogue['tetris']}", data={
        "name": "TETRIS", "price_per_hour": "2.99", "version": "1"})
    assert response.status_code == 200
    assert stored(app, catalogue["tetris"]).name == "TETRIS"


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "the legend of zelda", "price_per_hour": "3"},
     "There is already a game called “the legend of zelda”.".encode()),
    ({"name": "Tetris", "price_per_hour": "-3"}, b"Give a price between 0 and 9999.99."),
    ({"name": "Tetris", "price_per_hour": "three"}, b"Not a valid decimal value."),
    ({"name": "", "price_per_hour": "3"}, b"Give the game&#39;s name."),
])
def test_edit_errors_stay_in_the_row(app, htmx_client, auth, catalogue, data, message):
    auth.login("host")
    tetris = catalogue["tetris"]
    response = htmx_client.post(f"/tavern/games/{tetris}", data={**data, "version": "1"})
    assert response.status_code == 422
    assert message in response.data
    assert response.data.lstrip().startswith(f'<tr id="game-{tetris}" class="game-row editing"'.encode())
    assert b'aria-invalid="true"' in response.data
    # Nothing half-saved: the row still carries (and the game still has) the loaded version.
    assert b'name="version" value="1"' in response.data
    game = stored(app, tetris)
    assert (game.name, game.price_per_hour, game.version) == ("Tetris", Decimal("2.99"), 1)


def test_edit_without_javascript_keeps_the_listing(app, client, auth, catalogue):
    auth.login("host")
    tetris = catalogue["tetris"]
    page = client.get(f"/tavern/games/{tetris}/edit?budget=premium").data
    # Tetris is not in the premium listing, but the game being edited still shows.
    assert b"<html" in page and f'id="game-{tetris}" class="game-row editing"'.encode() in page
    assert f'action="/tavern/games/{tetris}?budget=premium"'.encode() in page
    response = client.post(f"/tavern/games/{tetris}?budget=premium",
                           data={"name": "Tetris", "price_per_hour": "2.50", "version": "1"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/tavern/games?budget=premium"
    response = client.post(f"/tavern/games/{tetris}", data={"name": "", "price_per_hour": "1",
                                                            "version": "2"})
    assert response.status_code == 422 and b"<html" in response.data
    assert b"Give the game&#39;s name." in response.data


def test_deactivate_and_activate(app, htmx_client, auth, catalogue):
    auth.login("staff")
    zelda = catalogue["zelda"]
    response = htmx_client.post(f"/tavern/games/{zelda}/active", data={"active": "no"})
    assert response.status_code == 200
    assert b'class="game-row inactive"' in response.data and b">Activate<" in response.data
    assert "game-counts-changed" in response.headers["HX-Trigger"]
    assert stored(app, zelda).active is False
    summary = htmx_client.get("/tavern/settings/budget").data
    assert summary.lstrip().startswith(b'<section id="budget-settings"')
    assert b'data-bucket="premium">0<' in summary
    htmx_client.post(f"/tavern/games/{zelda}/active", data={"active": "yes"})
    assert stored(app, zelda).active is True
    response = htmx_client.post(f"/tavern/games/{zelda}/active", data={"active": "maybe"})
    assert response.status_code == 422 and response.headers["HX-Retarget"] == "#flash"


def test_delete_then_undo_brings_back_styles_status_and_picks(app, htmx_client, auth,
                                                               catalogue):
    pong = catalogue["pong"]
    with app.app_context():
        db.session.add(GamePick(budget="cheap", gameplay=["Arcade"], suggested=["Pong"],
                                game_id=pong, game_name="Pong"))
        db.session.commit()
    auth.login("host")
    response = htmx_client.post(f"/tavern/games/{pong}/delete")
    assert response.status_code == 200
    assert "Deleted “Pong”.".encode() in response.data
    assert "game-counts-changed" in response.headers["HX-Trigger"]
    assert stored(app, pong) is None
    with app.app_context():
        pick = db.session.scalar(select(GamePick))
        assert (pick.game_id, pick.game_name) == (None, "Pong")  # history survives
    undo = dict(re.findall(r'name="(name|console|price_per_hour|active)" value="([^"]*)"',
                           response.data.decode()))
    undo["styles"] = re.findall(r'name="styles" value="(\d+)"', response.data.decode())
    assert undo["price_per_hour"] == "1.00" and "active" not in undo and len(undo["styles"]) == 1
    response = htmx_client.post(f"/tavern/games/{pong}/restore", data=undo)
    assert response.status_code == 200 and b'data-name="Pong"' in response.data
    with app.app_context():
        game = db.session.scalar(select(Game).where(Game.name == "Pong"))
        assert (game.active, game.price_per_hour, game.style_names) == (
            False, Decimal("1.00"), ("Arcade",))
        assert db.session.scalar(select(GamePick)).game_id == game.id


def test_undo_is_refused_in_the_row_when_the_name_was_taken_meanwhile(app, htmx_client, auth,
                                                                       catalogue):
    auth.login("host")
    htmx_client.post(f"/tavern/games/{catalogue['pong']}/delete")
    add_game(app, "PONG", "1.50")
    response = htmx_client.post(f"/tavern/games/{catalogue['pong']}/restore",
                                data={"name": "Pong", "price_per_hour": "1.00"})
    assert response.status_code == 422
    assert f'<tr id="game-{catalogue["pong"]}" class="deleted-row">'.encode() in response.data
    assert "There is already a game called “Pong”. Nothing was restored.".encode() in response.data
    response = htmx_client.post(f"/tavern/games/{catalogue['pong']}/restore",
                                data={"name": "", "price_per_hour": "1.00"})
    assert response.status_code == 422 and b"Give the game&#39;s name." in response.data


def test_unknown_games_are_404(htmx_client, auth):
    auth.login("staff")
    for method, url in (("get", "/tavern/games/999"), ("get", "/tavern/games/999/edit"),
                        ("post", "/tavern/games/999"), ("post", "/tavern/games/999/delete"),
                        ("post", "/tavern/games/999/active"), ("post", "/tavern/games/999/cover"),
                        ("post", "/tavern/games/999/cover/delete")):
        response = getattr(htmx_client, method)(url)
        assert response.status_code == 404, url
        assert b"There is no such game" in response.data


def test_budget_thresholds_move_the_buckets(app, htmx_client, auth, catalogue):
    auth.login("staff")
    response = htmx_client.post("/tavern/settings/budget",
                                data={"cheap_below": "3", "premium_from": "7.99"})
    assert response.status_code == 200
    assert response.data.lstrip().startswith(b'<section id="budget-settings"')
    assert b"Saved." in response.data and "budget-changed" in response.headers["HX-Trigger"]
    assert b'data-bucket="cheap">1<' in response.data  # Tetris 2.99
    assert b'data-bucket="standard">0<' in response.data
    assert b'data-bucket="premium">2<' in response.data  # Mario 7.99 is premium from 7.99
    assert row_names(htmx_client.get("/tavern/games?budget=premium").data) == [
        "Super Mario Odyssey", "The Legend of Zelda"]
    with app.app_context():
        assert service.budget_thresholds() == (3.0, 7.99)


@pytest.mark.parametrize(("cheap", "premium", "message"), [
    ("0", "20", b"Give a price between 0.01 and 9999.99."),
    ("-5", "20", b"Give a price between 0.01 and 9999.99."),
    ("20", "20", b"Premium must start above the cheap threshold."),
    ("25", "20", b"Premium must start above the cheap threshold."),
    ("five", "20", b"Not a valid decimal value."),
    ("NaN", "20", b"Give a number, such as 4.99."),
    ("5", "", b"Give the premium from."),
])
def test_bad_thresholds_are_refused_with_422(app, htmx_client, auth, cheap, premium, message):
    auth.login("host")
    response = htmx_client.post("/tavern/settings/budget",
                                data={"cheap_below": cheap, "premium_from": premium})
    assert response.status_code == 422
    assert message in response.data
    with app.app_context():
        assert service.budget_thresholds() == (5.0, 20.0)


def test_budget_form_without_javascript(client, auth):
    auth.login("host")
    response = client.post("/tavern/settings/budget", data={"cheap_below": "9", "premium_from": "1"})
    assert response.status_code == 422 and b"<html" in response.data
    response = client.post("/tavern/settings/budget", data={"cheap_below": "4", "premium_from": "30"})
    assert response.status_code == 303
    assert b"Cheap: under 4.00" in client.get("/tavern/games").data


def test_the_database_refuses_disordered_thresholds_and_negative_prices(app):
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        settings = tavern_settings()
        settings.cheap_below = Decimal("30")
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        db.session.add(Game(name="Bad", name_key="bad", price_per_hour=Decimal("-1")))
        with pytest.raises(IntegrityError):
            db.session.commit()


def test_plain_data_for_the_ml_bridge(app, catalogue):
    add_style(app, "Unused")
    add_game(app, "animal Crossing", "7.99")  # no styles; lower case sorts after capitals
    with app.app_context():
        assert service.active_games_plain() == [
            ("Super Mario Odyssey", 7.99, ("Adventure", "Platform")),
            ("Tetris", 2.99, ("Puzzle",)),
            ("The Legend of Zelda", 24.99, ("Adventure", "RPG")),
            ("animal Crossing", 7.99, ()),
        ]  # Pong is inactive
        assert service.style_vocabulary() == (
            "Adventure", "Arcade", "Platform", "Puzzle", "RPG", "Unused")
        assert service.budget_thresholds() == (5.0, 20.0)
