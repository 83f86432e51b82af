"""The gameplay-style vocabulary: list with counts, add, rename in place, detach, delete."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.tavern import service
from webapp.tavern.models import Game, GameplayStyle


@pytest.fixture
def vocabulary(app) -> dict[str, int]:
    """RPG (used by two games), Puzzle (one game) and Music (unused)."""
    with app.app_context():
        ids = {name: service.save_style(GameplayStyle(), name).id
               for name in ("RPG", "Puzzle", "Music")}
        service.save_game(Game(), "Chrono Trigger", None, Decimal("4"), [ids["RPG"]])
        service.save_game(Game(), "Final Fantasy VI", None, Decimal("4"),
                          [ids["RPG"], ids["Puzzle"]])
        return ids


def names(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(GameplayStyle.name).order_by(GameplayStyle.name)))


def test_the_list_shows_each_style_with_its_games_count(client, auth, vocabulary):
    auth.login("host")
    page = client.get("/tavern/styles").data
    assert b"<html" in page and b"Gameplay styles" in page
    rpg = page.split(b'data-style="RPG"')[1].split(b"</tr>")[0]
    assert b'<a href="/tavern/games?style=RPG"' in rpg and b">2</a>" in rpg
    assert b"Detach from 2 games" in rpg
    music = page.split(b'data-style="Music"')[1].split(b"</tr>")[0]
    assert b">0</a>" in music and b"Detach" not in music


def test_the_list_fragment_for_htmx(htmx_client, auth, vocabulary):
    auth.login("staff")
    response = htmx_client.get("/tavern/styles")
    assert response.data.lstrip().startswith(b'<section id="style-list"')
    assert b"<html" not in response.data and "HX-Request" in response.headers["Vary"]


def test_add_a_style_trimmed(app, htmx_client, auth):
    auth.login("staff")
    response = htmx_client.post("/tavern/styles", data={"name": "  Turn   Based  "})
    assert response.status_code == 201
    assert "Added “Turn Based”.".encode() in response.data
    assert "styles-changed" in response.headers["HX-Trigger"]
    assert names(app) == ["Turn Based"]


@pytest.mark.parametrize(("name", "message"), [
    ("rpg", "There is already a style called “rpg”.".encode()),
    (" R P G", None),  # different words: allowed
    ("   ", b"Give the style&#39;s name."),
    ("x" * 61, b"Field cannot be longer than 60 characters."),
])
def test_names_are_unique_in_any_case_and_required(app, htmx_client, auth, vocabulary, name,
                                                   message):
    auth.login("host")
    response = htmx_client.post("/tavern/styles", data={"name": name})
    if message is None:
        assert response.status_code == 201
        return
    assert response.status_code == 422 and message in response.data
    assert names(app) == ["Music", "Puzzle", "RPG"]


def test_rename_in_place(app, htmx_client, auth, vocabulary):
    auth.login("staff")
    rpg = vocabulary["RPG"]
    edit = htmx_client.get(f"/tavern/styles/{rpg}/edit")
    assert edit.data.lstrip().startswith(f'<tr id="style-{rpg}" class="style-row editing"'.encode())
    assert f'form="style-form-{rpg}"'.encode() in edit.data
    response = htmx_client.post(f"/tavern/styles/{rpg}", data={"name": "Role-playing"})
    assert response.status_code == 200 and b'data-style="Role-playing"' in response.data
    assert names(app) == ["Music", "Puzzle", "Role-playing"]
    with app.app_context():  # the games follow: they hold the style, not its name
        assert service.active_games_plain()[0] == ("Chrono Trigger", 4.0, ("Role-playing",))
    response = htmx_client.post(f"/tavern/styles/{rpg}", data={"name": "ROLE-PLAYING"})
    assert response.status_code == 200  # its own name in another case
    assert b"editing" not in htmx_client.get(f"/tavern/styles/{rpg}").data  # Escape


@pytest.mark.parametrize(("name", "message"), [
    ("puzzle", "There is already a style called “puzzle”.".encode()),
    ("", b"Give the style&#39;s name."),
])
def test_rename_errors_stay_in_the_row(app, htmx_client, auth, vocabulary, name, message):
    auth.login("host")
    rpg = vocabulary["RPG"]
    response = htmx_client.post(f"/tavern/styles/{rpg}", data={"name": name})
    assert response.status_code == 422 and message in response.data
    assert response.data.lstrip().startswith(f'<tr id="style-{rpg}" class="style-row editing"'.encode())
    assert names(app) == ["Music", "Puzzle", "RPG"]


def test_an_unused_style_can_be_deleted(app, htmx_client, auth, vocabulary):
    auth.login("staff")
    response = htmx_client.post(f"/tavern/styles/{vocabulary['Music']}/delete")
    assert response.status_code == 200 and "Deleted “Music”.".encode() in response.data
    assert names(app) == ["Puzzle", "RPG"]


def test_a_used_style_cannot_be_deleted_until_detached(app, htmx_client, auth, vocabulary):
    auth.login("staff")
    rpg = vocabulary["RPG"]
    response = htmx_client.post(f"/tavern/styles/{rpg}/delete")
    assert response.status_code == 422
    assert ("“RPG” cannot be deleted: 2 games use it. Detach it from them first, or keep "
            "it.").encode() in response.data
    assert response.data.lstrip().startswith(f'<tr id="style-{rpg}" class="style-row"'.encode())
    assert "RPG" in names(app)
    response = htmx_client.post(f"/tavern/styles/{rpg}/detach")
    assert response.status_code == 200 and b"Removed from 2 games." in response.data
    with app.app_context():
        assert [styles for _, _, styles in service.active_games_plain()] == [(), ("Puzzle",)]
    assert htmx_client.post(f"/tavern/styles/{rpg}/delete").status_code == 200
    assert names(app) == ["Music", "Puzzle"]


def test_without_javascript(client, auth, vocabulary):
    auth.login("staff")
    response = client.post(f"/tavern/styles/{vocabulary['Puzzle']}/delete")
    assert response.status_code == 422 and b"<html" in response.data
    assert "“Puzzle” cannot be deleted: 1 game uses it. Detach it from that game".encode() \
        in response.data
    page = client.get(f"/tavern/styles/{vocabulary['Puzzle']}/edit").data
    assert b"<html" in page and b'class="style-row editing"' in page
    response = client.post(f"/tavern/styles/{vocabulary['Puzzle']}/detach")
    assert response.status_code == 303 and response.headers["Location"] == "/tavern/styles"
    response = client.post("/tavern/styles", data={"name": "puzzle"})
    assert response.status_code == 422 and b"<html" in response.data
    response = client.post("/tavern/styles", data={"name": "Racing"})
    assert response.status_code == 303


def test_unknown_styles_are_404(htmx_client, auth):
    auth.login("host")
    for method, url in (("get", "/tavern/styles/999"), ("get", "/tavern/styles/999/edit"),
                        ("post", "/tavern/styles/999"), ("post", "/tavern/styles/999/delete"),
                        ("post", "/tavern/styles/999/detach")):
        assert getattr(htmx_client, method)(url).status_code == 404, url
