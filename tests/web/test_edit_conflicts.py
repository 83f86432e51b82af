"""Optimistic locking: two staff editing the same row must not silently overwrite each other."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select, update

from tests.support import add_nights
from webapp.extensions import db
from webapp.pizzeria.models import Night

CONFLICT = b"Someone else changed this night while you were editing: here is their version"


@pytest.fixture
def monday(app) -> int:
    """The id of one stored night (Monday 2022-12-19: 12 reservations, 40 doughs)."""
    with app.app_context():
        add_nights([(dt.date(2022, 12, 19), 12, 40)])
        return db.session.scalar(select(Night.id))


def stored(app, night_id: int) -> Night:
    """The night as the database has it now."""
    with app.app_context():
        night = db.session.get(Night, night_id)
        db.session.expunge(night)
        return night


def loaded_version(html: bytes) -> str:
    """The version the edit row's Save form carries."""
    match = re.search(rb'name="version" value="([^"]*)"', html)
    assert match, "the edit row must carry the version it was loaded with"
    return match.group(1).decode()


def second_client(app, auth):
    """Another member of staff, logged in from another browser."""
    other = app.test_client()
    type(auth)(app, other).login("staff")
    return other


def edit(client, night_id: int, version: str | None, **values):
    """Save the row as the inline editor does (htmx POST)."""
    data = {"date": "2022-12-19", **values}
    if version is not None:
        data["version"] = version
    return client.post(f"/pizzeria/nights/{night_id}", data=data, headers={"HX-Request": "true"})


def test_second_save_of_the_same_loaded_row_is_a_409_and_keeps_the_first(
        app, htmx_client, auth, monday):
    auth.login("host")
    other = second_client(app, auth)
    first_form = htmx_client.get(f"/pizzeria/nights/{monday}/edit").data
    second_form = other.get(f"/pizzeria/nights/{monday}/edit",
                            headers={"HX-Request": "true"}).data
    assert loaded_version(first_form) == loaded_version(second_form) == "1"

    assert edit(htmx_client, monday, "1", reservations="13", doughs="41").status_code == 200
    response = edit(other, monday, "1", reservations="99", doughs="77",
                    event_note="typed by the second")

    assert response.status_code == 409
    assert CONFLICT in response.data
    night = stored(app, monday)
    assert (night.reservations, night.doughs, night.event_note) == (13, 41, None)
    # The row stays open with what the second editor typed, their version beside it, and the
    # new version in the form so that "Save mine" is a deliberate overwrite.
    row = response.data
    assert b'class="night-row editing conflict"' in row and b"<html" not in row
    assert b'value="99"' in row and b'value="77"' in row and b"typed by the second" in row
    assert b"theirs: 13" in row and b"theirs: 41" in row and b"theirs: \xe2\x80\x93" in row
    assert b"theirs: 2022-12-19" not in row  # the date is the same on both sides: no noise
    assert loaded_version(row) == str(night.version) == "2"
    assert f'hx-get="/pizzeria/nights/{monday}/edit"'.encode() in row  # Reload theirs
    assert "HX-Trigger" not in response.headers  # nothing changed: no refresh of the summary


def test_save_mine_after_a_conflict_overwrites_knowingly(app, htmx_client, auth, monday):
    auth.login("host")
    assert edit(htmx_client, monday, "1", reservations="13").status_code == 200
    conflict = edit(htmx_client, monday, "1", reservations="99")
    assert conflict.status_code == 409
    response = edit(htmx_client, monday, loaded_version(conflict.data), reservations="99")
    assert response.status_code == 200
    assert stored(app, monday).reservations == 99


def test_save_with_the_current_version_succeeds_and_bumps_it(app, htmx_client, auth, monday):
    auth.login("host")
    assert stored(app, monday).version == 1
    response = edit(htmx_client, monday, "1", reservations="14")
    assert response.status_code == 200
    assert stored(app, monday).version == 2
    again = htmx_client.get(f"/pizzeria/nights/{monday}/edit").data
    assert loaded_version(again) == "2"
    assert edit(htmx_client, monday, "2", reservations="15").status_code == 200
    night = stored(app, monday)
    assert (night.reservations, night.version) == (15, 3)


@pytest.mark.parametrize("version", [None, "", "garbage", "1.0", "-1", "0"])
def test_missing_or_garbled_version_is_treated_as_a_conflict(
        app, htmx_client, auth, monday, version):
    """Without a valid version the editor cannot prove they saw the latest values."""
    auth.login("host")
    response = edit(htmx_client, monday, version, reservations="99")
    assert response.status_code == 409
    assert CONFLICT in response.data
    night = stored(app, monday)
    assert (night.reservations, night.version) == (12, 1)


def test_invalid_values_with_the_current_version_are_still_a_422(app, htmx_client, auth, monday):
    auth.login("host")
    response = edit(htmx_client, monday, "1", reservations="-5")
    assert response.status_code == 422
    assert CONFLICT not in response.data and b'aria-invalid="true"' in response.data
    assert loaded_version(response.data) == "1"


def test_conflict_with_invalid_typed_values_keeps_them_and_their_errors(
        app, htmx_client, auth, monday):
    auth.login("host")
    assert edit(htmx_client, monday, "1", reservations="13").status_code == 200
    response = edit(htmx_client, monday, "1", reservations="twelve")
    assert response.status_code == 409
    assert b'value="twelve"' in response.data and b"Not a valid integer value." in response.data
    assert stored(app, monday).reservations == 13


def test_a_save_racing_past_the_version_check_is_caught_at_update(
        app, htmx_client, auth, monday, monkeypatch):
    """Someone commits between the view's read and its UPDATE: version_id_col refuses it."""
    from webapp.pizzeria import service

    real_save = service.save_night

    def save_after_someone_else(night, values):
        with db.engine.begin() as other:  # another request commits first
            other.execute(update(Night).where(Night.id == night.id)
                          .values(reservations=50, version=Night.version + 1))
        return real_save(night, values)

    monkeypatch.setattr(service, "save_night", save_after_someone_else)
    auth.login("host")
    response = edit(htmx_client, monday, "1", reservations="99")
    assert response.status_code == 409
    assert CONFLICT in response.data and b"theirs: 50" in response.data
    assert loaded_version(response.data) == "2"
    night = stored(app, monday)
    assert (night.reservations, night.version) == (50, 2)


def test_conflict_without_javascript_shows_the_whole_page_with_the_row(
        app, client, auth, monday):
    auth.login("host")
    assert client.post(f"/pizzeria/nights/{monday}",
                       data={"date": "2022-12-19", "reservations": "13",
                             "version": "1"}).status_code == 303
    response = client.post(f"/pizzeria/nights/{monday}",
                           data={"date": "2022-12-19", "reservations": "99", "version": "1"})
    assert response.status_code == 409
    assert b"<html" in response.data and CONFLICT in response.data
    assert b'value="99"' in response.data and b"theirs: 13" in response.data


def test_htmx_swaps_409_responses(client, auth):
    """The conflict row is only seen if htmx swaps a 409 into the target (not just 2xx/422)."""
    import json
    import re as regex

    auth.login("host")
    page = client.get("/pizzeria/nights").data.decode()
    config = json.loads(regex.search(r"name=\"htmx-config\" content='([^']*)'", page).group(1))
    for rule in config["responseHandling"]:
        if regex.fullmatch(rule["code"], "409"):
            assert rule["swap"] is True
            break
    else:
        pytest.fail("no htmx responseHandling rule covers 409")


# --- Gifts rules: the builder -----------------------------------------------------------------

RULE_CONFLICT = b"Someone else changed this rule while you were editing: here is their version."


@pytest.fixture
def coffee_rule(app) -> dict:
    """A stored rule "Coffee" (text contains coffee -> theme: coffee) and the label ids."""
    from tests.web.test_gifts_rules import COFFEE, add_rule, make_vocabulary

    with app.app_context():
        labels = make_vocabulary()
    return {"id": add_rule(app, "Coffee", [COFFEE], [labels["theme:coffee"]]), "labels": labels}


def rule_edit(client, rule: dict, version: str | None, name: str = "Coffee",
              value: str = "coffee", label: str = "theme:coffee"):
    """Save the builder as htmx does."""
    from tests.web.test_gifts_rules import rule_form

    data = rule_form(name, [("text", "contains", value)], [rule["labels"][label]])
    if version is not None:
        data["version"] = version
    return client.post(f"/gifts/rules/{rule['id']}", data=data, headers={"HX-Request": "true"})


def stored_rule(app, rule_id: int) -> tuple[str, int, list[str]]:
    """A rule's name, version and label names as stored now."""
    from webapp.gifts.models import Rule

    with app.app_context():
        row = db.session.get(Rule, rule_id)
        return row.name, row.version, [label.name for label in row.labels]


def test_second_save_of_the_same_rule_is_a_409_and_keeps_the_first(
        app, htmx_client, auth, coffee_rule):
    auth.login("staff")
    other = second_client(app, auth)
    page = htmx_client.get(f"/gifts/rules/{coffee_rule['id']}/edit").data
    assert loaded_version(page) == "1"
    assert rule_edit(other, coffee_rule, "1", name="Coffee lovers").status_code == 200

    response = rule_edit(htmx_client, coffee_rule, "1", name="Coffee and tea", value="tea")

    assert response.status_code == 409
    assert RULE_CONFLICT in response.data
    assert stored_rule(app, coffee_rule["id"]) == ("Coffee lovers", 2, ["coffee"])
    form = response.data
    assert b'id="rule-form"' in form and b"<html" not in form
    assert b'value="Coffee and tea"' in form and b'value="tea"' in form  # what was typed here
    assert b"<dd>Coffee lovers</dd>" in form  # theirs
    assert loaded_version(form) == "2" and b"Save mine" in form
    assert f'hx-get="/gifts/rules/{coffee_rule["id"]}/edit"'.encode() in form  # Reload theirs
    # Save mine, now knowingly, with their version.
    assert rule_edit(htmx_client, coffee_rule, "2", name="Coffee and tea").status_code == 200
    assert stored_rule(app, coffee_rule["id"]) == ("Coffee and tea", 3, ["coffee"])


def test_a_labels_only_change_bumps_the_rule_version(app, htmx_client, auth, coffee_rule):
    """Labels live in another table: the rule's own row must still be updated and checked."""
    auth.login("staff")
    assert rule_edit(htmx_client, coffee_rule, "1", label="theme:tea").status_code == 200
    assert stored_rule(app, coffee_rule["id"]) == ("Coffee", 2, ["tea"])
    response = rule_edit(htmx_client, coffee_rule, "1", label="theme:local")
    assert response.status_code == 409
    assert stored_rule(app, coffee_rule["id"]) == ("Coffee", 2, ["tea"])


@pytest.mark.parametrize("version", [None, "", "garbage", "0"])
def test_rule_save_without_a_valid_version_is_a_conflict(app, htmx_client, auth, coffee_rule,
                                                          version):
    auth.login("staff")
    response = rule_edit(htmx_client, coffee_rule, version, name="Renamed")
    assert response.status_code == 409 and RULE_CONFLICT in response.data
    assert stored_rule(app, coffee_rule["id"]) == ("Coffee", 1, ["coffee"])


def test_rule_errors_keep_the_stored_version(app, htmx_client, auth, coffee_rule):
    """A 422 (here a duplicate name) must not leave a half-done update that bumps the version."""
    from tests.web.test_gifts_rules import COFFEE, add_rule

    add_rule(app, "Tea", [COFFEE], [coffee_rule["labels"]["theme:tea"]])
    auth.login("staff")
    response = rule_edit(htmx_client, coffee_rule, "1", name="tea")
    assert response.status_code == 422 and RULE_CONFLICT not in response.data
    assert loaded_version(response.data) == "1"
    assert rule_edit(htmx_client, coffee_rule, "1", name="Coffee beans").status_code == 200


def test_a_rule_save_racing_past_the_version_check_is_caught_at_update(
        app, htmx_client, auth, coffee_rule, monkeypatch):
    from webapp.gifts import rules as service
    from webapp.gifts.models import Rule

    real_save = service.save_rule

    def save_after_someone_else(row, *args, **kwargs):
        with db.engine.begin() as other:
            other.execute(update(Rule).where(Rule.id == row.id)
                          .values(name="Theirs", version=Rule.version + 1))
        return real_save(row, *args, **kwargs)

    monkeypatch.setattr(service, "save_rule", save_after_someone_else)
    auth.login("staff")
    response = rule_edit(htmx_client, coffee_rule, "1", name="Mine")
    assert response.status_code == 409 and RULE_CONFLICT in response.data
    assert b"<dd>Theirs</dd>" in response.data and loaded_version(response.data) == "2"
    assert stored_rule(app, coffee_rule["id"])[:2] == ("Theirs", 2)


def test_rule_conflict_without_javascript_shows_the_whole_page(app, client, auth, coffee_rule):
    from tests.web.test_gifts_rules import rule_form

    auth.login("staff")
    data = rule_form("Renamed", [("text", "contains", "coffee")],
                     [coffee_rule["labels"]["theme:coffee"]])
    response = client.post(f"/gifts/rules/{coffee_rule['id']}", data={**data, "version": "7"})
    assert response.status_code == 409
    assert b"<html" in response.data and RULE_CONFLICT in response.data
    assert b'value="Renamed"' in response.data


# --- Tavern games: the inline edit of the catalogue -------------------------------------------

GAME_CONFLICT = b"Someone else changed this game while you were editing: here is their version"


@pytest.fixture
def tetris(app) -> int:
    """The id of one stored game: Tetris, Gameboy, 2.99 an hour, Puzzle."""
    from tests.web.test_tavern_games import add_game

    return add_game(app, "Tetris", "2.99", ["Puzzle"], console="Gameboy")


@pytest.fixture
def game_edit(app, tetris):
    """Save Tetris's row as the inline editor does (htmx POST): ``post(client, version,
    **values)``, where the values not given are the stored ones."""
    from webapp.tavern.models import Game

    with app.app_context():
        styles = [str(style.id) for style in db.session.get(Game, tetris).styles]

    def post(client, version: str | None, **values):
        data = {"name": "Tetris", "console": "Gameboy", "price_per_hour": "2.99",
                "styles": styles, **values}
        if version is not None:
            data["version"] = version
        return client.post(f"/tavern/games/{tetris}", data=data, headers={"HX-Request": "true"})

    return post


def stored_game(app, game_id: int) -> tuple:
    """A game's name, console, price, style names and version as stored now."""
    from webapp.tavern.models import Game

    with app.app_context():
        game = db.session.get(Game, game_id)
        return game.name, game.console, str(game.price_per_hour), game.style_names, game.version


def test_second_save_of_the_same_game_is_a_409_and_keeps_the_first(
        app, htmx_client, auth, tetris, game_edit):
    auth.login("host")
    other = second_client(app, auth)
    mine = htmx_client.get(f"/tavern/games/{tetris}/edit").data
    theirs = other.get(f"/tavern/games/{tetris}/edit", headers={"HX-Request": "true"}).data
    assert loaded_version(mine) == loaded_version(theirs) == "1"
    assert game_edit(other, "1", name="Tetris DX").status_code == 200

    response = game_edit(htmx_client, "1", price_per_hour="9.50", console="Game Boy")

    assert response.status_code == 409
    assert GAME_CONFLICT in response.data
    assert stored_game(app, tetris) == ("Tetris DX", "Gameboy", "2.99", ("Puzzle",), 2)
    row = response.data
    assert b'class="game-row editing conflict"' in row and b"<html" not in row
    # What was typed here stays in the boxes; theirs shows under the boxes that differ.
    assert b'value="Tetris"' in row and b'value="9.50"' in row and b'value="Game Boy"' in row
    assert b"theirs: Tetris DX" in row and b"theirs: 2.99" in row and b"theirs: Gameboy" in row
    assert b"theirs: Puzzle" not in row  # the styles are the same on both sides: no noise
    assert loaded_version(row) == "2" and b"Save mine" in row
    assert f'hx-get="/tavern/games/{tetris}/edit"'.encode() in row  # Reload theirs
    assert "HX-Trigger" not in response.headers  # nothing changed: no refresh of the counts

    # Save mine: knowingly, with their version.
    saved = game_edit(htmx_client, "2", price_per_hour="9.50", console="Game Boy")
    assert saved.status_code == 200 and b"editing" not in saved.data
    assert stored_game(app, tetris) == ("Tetris", "Game Boy", "9.50", ("Puzzle",), 3)


def test_reload_theirs_after_a_game_conflict_shows_their_values(
        app, htmx_client, auth, tetris, game_edit):
    auth.login("staff")
    assert game_edit(second_client(app, auth), "1", name="Tetris DX").status_code == 200
    conflict = game_edit(htmx_client, "1", name="Tetris 99")
    assert conflict.status_code == 409
    reload = htmx_client.get(f"/tavern/games/{tetris}/edit")  # the Reload theirs link
    assert reload.status_code == 200
    assert b'value="Tetris DX"' in reload.data and b'value="Tetris 99"' not in reload.data
    assert GAME_CONFLICT not in reload.data and loaded_version(reload.data) == "2"
    assert game_edit(htmx_client, "2", name="Tetris 99").status_code == 200


def test_a_styles_only_change_bumps_the_game_version(app, htmx_client, auth, tetris,
                                                     game_edit):
    """Styles live in another table: the game's own row must still be updated and checked."""
    from tests.web.test_tavern_games import add_style

    arcade = str(add_style(app, "Arcade"))
    auth.login("staff")
    assert game_edit(htmx_client, "1", styles=[arcade]).status_code == 200
    assert stored_game(app, tetris)[3:] == (("Arcade",), 2)
    response = game_edit(htmx_client, "1", price_per_hour="3.99")
    assert response.status_code == 409 and b"theirs: Arcade" in response.data
    assert stored_game(app, tetris) == ("Tetris", "Gameboy", "2.99", ("Arcade",), 2)


@pytest.mark.parametrize("version", [None, "", "garbage", "1.0", "0"])
def test_game_save_without_a_valid_version_is_a_conflict(app, htmx_client, auth, tetris,
                                                         game_edit, version):
    auth.login("host")
    response = game_edit(htmx_client, version, name="Renamed")
    assert response.status_code == 409 and GAME_CONFLICT in response.data
    assert stored_game(app, tetris) == ("Tetris", "Gameboy", "2.99", ("Puzzle",), 1)


def test_a_game_save_racing_past_the_version_check_is_caught_at_update(
        app, htmx_client, auth, tetris, game_edit, monkeypatch):
    """Someone commits between the view's read and its UPDATE: version_id_col refuses it."""
    from webapp.tavern import service
    from webapp.tavern.models import Game

    real_save = service.save_game

    def save_after_someone_else(game, *args):
        with db.engine.begin() as other:  # another request commits first
            other.execute(update(Game).where(Game.id == game.id)
                          .values(price_per_hour=5, version=Game.version + 1))
        return real_save(game, *args)

    monkeypatch.setattr(service, "save_game", save_after_someone_else)
    auth.login("host")
    response = game_edit(htmx_client, "1", name="Mine")
    assert response.status_code == 409
    assert GAME_CONFLICT in response.data and b"theirs: 5.00" in response.data
    assert b'value="Mine"' in response.data and loaded_version(response.data) == "2"
    assert stored_game(app, tetris) == ("Tetris", "Gameboy", "5.00", ("Puzzle",), 2)


def test_the_games_importer_bumps_the_version_of_the_games_it_changes(
        app, htmx_client, auth, tetris, game_edit):
    """An import over a game someone has open must not be overwritten by their Save."""
    from webapp.tavern.imports import import_catalogue

    auth.login("host")
    assert loaded_version(htmx_client.get(f"/tavern/games/{tetris}/edit").data) == "1"
    with app.app_context():
        record = import_catalogue(b"name,price\nTetris,4.50\nPong,1.00\n", "games.csv", "test")
        assert (record.added, record.updated) == (1, 1)
    assert stored_game(app, tetris) == ("Tetris", "Gameboy", "4.50", ("Puzzle",), 2)

    response = game_edit(htmx_client, "1", name="Tetris DX")
    assert response.status_code == 409 and b"theirs: 4.50" in response.data
    assert stored_game(app, tetris)[0] == "Tetris"


def test_game_conflict_without_javascript_shows_the_whole_page_with_the_row(
        app, client, auth, tetris):
    auth.login("host")
    assert client.post(f"/tavern/games/{tetris}",
                       data={"name": "Tetris DX", "price_per_hour": "2.99",
                             "version": "1"}).status_code == 303
    response = client.post(f"/tavern/games/{tetris}",
                           data={"name": "Tetris 99", "price_per_hour": "2.99", "version": "1"})
    assert response.status_code == 409
    assert b"<html" in response.data and GAME_CONFLICT in response.data
    assert b'value="Tetris 99"' in response.data and b"theirs: Tetris DX" in response.data


def concurrent_game_save(monkeypatch, function: str):
    """Make the tavern service's ``function`` lose a race: another request saves the game
    (bumping its version) just before it commits."""
    from webapp.tavern import service
    from webapp.tavern.models import Game

    real = getattr(service, function)

    def after_someone_else(game, *args):
        with db.engine.begin() as other:
            other.execute(update(Game).where(Game.id == game.id)
                          .values(name="Theirs", version=Game.version + 1))
        return real(game, *args)

    monkeypatch.setattr(service, function, after_someone_else)


def test_deactivating_a_game_as_someone_saves_it_is_a_409_not_a_500(
        app, htmx_client, auth, tetris, monkeypatch):
    concurrent_game_save(monkeypatch, "set_active")
    auth.login("staff")
    response = htmx_client.post(f"/tavern/games/{tetris}/active", data={"active": "no"})
    assert response.status_code == 409 and response.headers["HX-Retarget"] == "#flash"
    assert b"Someone else saved this game at the same moment" in response.data
    from webapp.tavern.models import Game

    with app.app_context():
        game = db.session.get(Game, tetris)
        assert (game.name, game.active, game.version) == ("Theirs", True, 2)


def test_a_cover_upload_that_loses_a_race_is_a_409_and_leaves_no_live_file(
        app, htmx_client, auth, tetris, monkeypatch, tmp_path):
    import io

    from tests.web.test_tavern_covers import PNG

    monkeypatch.setattr(app, "instance_path", str(tmp_path / "instance"))
    concurrent_game_save(monkeypatch, "set_cover")
    auth.login("staff")
    response = htmx_client.post(f"/tavern/games/{tetris}/cover",
                                data={"cover": (io.BytesIO(PNG), "cover.png")},
                                content_type="multipart/form-data")
    assert response.status_code == 409
    covers = tmp_path / "instance" / "covers"
    # The stored file went to the trash (pruned later): no game points at it.
    assert list(covers.glob("*.png")) == [] and len(list(covers.glob("trash/*.png"))) == 1


# --- Gifts clients: the details form ------------------------------------------------------------

CLIENT_CONFLICT = b"Someone else changed this client while you were editing: here is their version."


@pytest.fixture
def acme(app) -> int:
    """The id of one stored client: Acme Labs, tech."""
    from webapp.gifts.models import Client, name_key

    with app.app_context():
        client = Client(name="Acme Labs", name_key=name_key("Acme Labs"), industry="tech",
                        notes="")
        db.session.add(client)
        db.session.commit()
        return client.id


def client_edit(client, client_id: int, version: str | None, **values):
    """Save the client's details as the page's form does (htmx POST)."""
    data = {"name": "Acme Labs", "industry": "tech", "notes": "", **values}
    if version is not None:
        data["version"] = version
    return client.post(f"/gifts/clients/{client_id}", data=data, headers={"HX-Request": "true"})


def stored_client(app, client_id: int) -> tuple[str, str, str, int]:
    """A client's name, industry, notes and version as stored now."""
    from webapp.gifts.models import Client

    with app.app_context():
        row = db.session.get(Client, client_id)
        return row.name, row.industry, row.notes, row.version


def test_second_save_of_the_same_client_is_a_409_and_keeps_the_first(
        app, htmx_client, auth, acme):
    auth.login("staff")
    other = second_client(app, auth)
    mine = htmx_client.get(f"/gifts/clients/{acme}").data
    theirs = other.get(f"/gifts/clients/{acme}").data
    assert loaded_version(mine) == loaded_version(theirs) == "1"
    assert client_edit(other, acme, "1", industry="finance").status_code == 200

    response = client_edit(htmx_client, acme, "1", notes="Prefers tea, typed here")

    assert response.status_code == 409
    assert CLIENT_CONFLICT in response.data
    assert stored_client(app, acme) == ("Acme Labs", "finance", "", 2)
    form = response.data
    assert b'id="client-details"' in form and b"<html" not in form
    assert b"Prefers tea, typed here" in form and b'value="tech"' in form  # what was typed here
    assert b"<dd>finance</dd>" in form  # theirs
    assert loaded_version(form) == "2" and b"Save mine" in form
    assert f'hx-get="/gifts/clients/{acme}"'.encode() in form  # Reload theirs

    # Save mine, knowingly, with their version.
    assert client_edit(htmx_client, acme, "2", notes="Prefers tea").status_code == 200
    assert stored_client(app, acme) == ("Acme Labs", "tech", "Prefers tea", 3)


def test_reload_theirs_after_a_client_conflict_shows_their_values(app, htmx_client, auth, acme):
    auth.login("staff")
    assert client_edit(second_client(app, auth), acme, "1", name="Acme Inc").status_code == 200
    assert client_edit(htmx_client, acme, "1", name="Acme Labs Ltd").status_code == 409
    reload = htmx_client.get(f"/gifts/clients/{acme}")  # the Reload theirs link
    assert reload.status_code == 200 and b'id="client-details"' in reload.data
    assert b'value="Acme Inc"' in reload.data and b"Acme Labs Ltd" not in reload.data
    assert CLIENT_CONFLICT not in reload.data and loaded_version(reload.data) == "2"


@pytest.mark.parametrize("version", [None, "", "garbage", "0"])
def test_client_save_without_a_valid_version_is_a_conflict(app, htmx_client, auth, acme,
                                                           version):
    auth.login("staff")
    response = client_edit(htmx_client, acme, version, name="Renamed")
    assert response.status_code == 409 and CLIENT_CONFLICT in response.data
    assert stored_client(app, acme) == ("Acme Labs", "tech", "", 1)


def test_a_client_save_racing_past_the_version_check_is_caught_at_update(
        app, htmx_client, auth, acme, monkeypatch):
    from webapp.gifts import clients
    from webapp.gifts.models import Client

    real_save = clients.save_client

    def save_after_someone_else(row, form):
        with db.engine.begin() as other:
            other.execute(update(Client).where(Client.id == row.id)
                          .values(industry="legal", version=Client.version + 1))
        return real_save(row, form)

    monkeypatch.setattr(clients, "save_client", save_after_someone_else)
    auth.login("staff")
    response = client_edit(htmx_client, acme, "1", notes="Mine")
    assert response.status_code == 409 and CLIENT_CONFLICT in response.data
    assert b"<dd>legal</dd>" in response.data and loaded_version(response.data) == "2"
    assert stored_client(app, acme) == ("Acme Labs", "legal", "", 2)


def test_client_errors_keep_the_stored_version(app, htmx_client, auth, acme):
    auth.login("staff")
    response = client_edit(htmx_client, acme, "1", name="")
    assert response.status_code == 422 and CLIENT_CONFLICT not in response.data
    assert loaded_version(response.data) == "1"
    assert client_edit(htmx_client, acme, "1", name="Acme").status_code == 200


def test_client_conflict_without_javascript_shows_the_whole_page(app, client, auth, acme):
    auth.login("staff")
    response = client.post(f"/gifts/clients/{acme}",
                           data={"name": "Renamed", "industry": "tech", "version": "7"})
    assert response.status_code == 409
    assert b"<html" in response.data and CLIENT_CONFLICT in response.data
    assert b'value="Renamed"' in response.data


# --- Deleting a night ---------------------------------------------------------------------------

STALE_DELETE = b"This night was changed by someone else since you loaded it, so it was not deleted"


def delete(client, night_id: int, version: str | None):
    """Delete the night as its row's Delete button does (htmx POST)."""
    data = {} if version is None else {"version": version}
    return client.post(f"/pizzeria/nights/{night_id}/delete", data=data,
                       headers={"HX-Request": "true"})


def test_the_delete_button_carries_the_version_and_deletes_that_version(
        app, htmx_client, auth, monday):
    auth.login("staff")
    page = htmx_client.get("/pizzeria/nights").data.decode()
    form = re.search(rf'action="/pizzeria/nights/{monday}/delete".*?</form>', page, re.S)
    assert '<input type="hidden" name="version" value="1">' in form.group(0)
    response = delete(htmx_client, monday, "1")
    assert response.status_code == 200 and b"Deleted the night of 2022-12-19." in response.data
    with app.app_context():
        assert db.session.get(Night, monday) is None


def test_deleting_a_night_changed_since_it_was_loaded_is_a_409_and_deletes_nothing(
        app, htmx_client, auth, monday):
    auth.login("staff")
    assert edit(second_client(app, auth), monday, "1", reservations="13").status_code == 200
    response = delete(htmx_client, monday, "1")
    assert response.status_code == 409 and STALE_DELETE in response.data
    assert response.headers["HX-Retarget"] == "#flash"  # the message, where the user looks
    assert "HX-Trigger" not in response.headers
    night = stored(app, monday)
    assert (night.reservations, night.version) == (13, 2)
    # With the version the reloaded row carries, the delete is knowing and goes through.
    assert delete(htmx_client, monday, "2").status_code == 200
    with app.app_context():
        assert db.session.get(Night, monday) is None


@pytest.mark.parametrize("version", [None, "", "garbage", "0"])
def test_a_delete_without_a_valid_version_deletes_nothing(app, htmx_client, auth, monday,
                                                          version):
    auth.login("staff")
    response = delete(htmx_client, monday, version)
    assert response.status_code == 409 and STALE_DELETE in response.data
    assert stored(app, monday).version == 1


def test_a_delete_racing_past_the_version_check_is_caught_at_delete(
        app, htmx_client, auth, monday, monkeypatch):
    """Someone saves between the view's read and its DELETE: version_id_col refuses it."""
    from webapp.pizzeria import service

    real_values = service.night_values

    def values_after_someone_else(night):
        with db.engine.begin() as other:  # another request commits first
            other.execute(update(Night).where(Night.id == night.id)
                          .values(reservations=50, version=Night.version + 1))
        return real_values(night)

    monkeypatch.setattr(service, "night_values", values_after_someone_else)
    auth.login("staff")
    response = delete(htmx_client, monday, "1")
    assert response.status_code == 409 and STALE_DELETE in response.data
    night = stored(app, monday)
    assert (night.reservations, night.version) == (50, 2)


def test_stale_delete_without_javascript_shows_the_night_as_it_is_now(
        app, client, auth, monday):
    auth.login("staff")
    assert edit(second_client(app, auth), monday, "1", reservations="13").status_code == 200
    response = client.post(f"/pizzeria/nights/{monday}/delete", data={"version": "1"})
    assert response.status_code == 409
    assert b"<html" in response.data and STALE_DELETE in response.data
    assert b'<td class="num">13</td>' in response.data  # their value, to look at first
    assert b'name="version" value="2"' in response.data  # so that Delete now is knowing
    assert client.post(f"/pizzeria/nights/{monday}/delete",
                       data={"version": "2"}).status_code == 303
