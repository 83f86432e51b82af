"""The tavern's front desk: live suggestions, picks, and the recommendations API."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.tavern.models import Game, GamePick


@pytest.fixture
def demo(app, runner):
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    assert "Games model: version" in result.output


def test_empty_state_without_games_or_model(htmx_client, auth):
    auth.login("host")
    response = htmx_client.get("/tavern/suggestions?budget=cheap")
    assert response.status_code == 200
    assert b"games model not trained yet" in response.data


def test_the_empty_state_keeps_the_query_for_a_pick_of_another_game(htmx_client, auth):
    """With no list to pick from, "They picked something else" still sends the query."""
    auth.login("host")
    response = htmx_client.get("/tavern/suggestions?budget=cheap&gameplay=Puzzle")
    query = response.get_data(as_text=True).split('id="suggest-query"', 1)[1].split("</div>")[0]
    assert 'name="budget" value="cheap"' in query
    assert 'name="gameplay" value="Puzzle"' in query


def test_ticking_styles_changes_the_top_5(htmx_client, auth, demo):
    auth.login("host")
    adventure = htmx_client.get("/tavern/suggestions?budget=premium&gameplay=Adventure&gameplay=RPG")
    assert adventure.status_code == 200 and b"<html" not in adventure.data
    assert adventure.data.count(b'class="suggestion"') == 5
    assert b"matches" in adventure.data and b"% match" in adventure.data
    sport = htmx_client.get("/tavern/suggestions?budget=cheap&gameplay=Sport")
    assert sport.data.count(b'class="suggestion"') == 5
    assert sport.data != adventure.data


def test_unknown_style_or_budget_does_not_break_the_page(htmx_client, auth, demo):
    auth.login("host")
    response = htmx_client.get("/tavern/suggestions?budget=royal&gameplay=Knitting")
    assert response.status_code == 200
    assert b"Not used until the model is retrained: Knitting" in response.data
    assert b"for a standard budget" in response.data


def test_without_javascript_the_form_submits_to_the_page(client, auth, demo):
    auth.login("staff")
    page = client.get("/tavern/?budget=premium&gameplay=Adventure")
    assert page.status_code == 200 and b"<html" in page.data
    assert page.data.count(b'class="suggestion"') == 5 and b"<noscript>" in page.data


def test_recording_a_pick_stores_query_and_suggestions(app, htmx_client, auth, demo):
    auth.login("host")
    with app.app_context():
        game = db.session.scalar(select(Game).where(Game.name == "Elden Ring"))
    response = htmx_client.post("/tavern/picks", data={
        "game_id": str(game.id), "budget": "premium", "gameplay": "Adventure|RPG",
        "suggested": "Elden Ring|Metroid Prime", "model_version": "v1"})
    assert response.status_code == 200
    assert b"Recorded: they picked Elden Ring." in response.data
    with app.app_context():
        pick = db.session.scalar(select(GamePick).where(GamePick.synthetic.is_(False)))
        assert (pick.game_name, pick.budget, pick.gameplay, pick.suggested, pick.created_by) == (
            "Elden Ring", "premium", ["Adventure", "RPG"], ["Elden Ring", "Metroid Prime"],
            "test-host")


@pytest.mark.parametrize("data", [
    {"budget": "premium"},
    {"game_id": "424242", "budget": "premium"},
    {"game_id": "1", "budget": "royal"},
])
def test_bad_picks_are_refused_with_422(app, htmx_client, auth, demo, data):
    auth.login("host")
    response = htmx_client.post("/tavern/picks", data=data)
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#flash"
    with app.app_context():
        assert db.session.scalar(select(GamePick).where(GamePick.synthetic.is_(False))) is None


def token_for(runner, auth, role: str) -> str:
    username = auth.ensure_user(role)
    result = runner.invoke(args=["users", "token", username])
    assert result.exit_code == 0, result.output
    return [line for line in result.output.split() if len(line) > 30][-1]


def test_recommendations_api(client, runner, auth, demo):
    token = token_for(runner, auth, "host")
    headers = {"Authorization": f"Bearer {token}"}
    response = client.post("/api/v1/tavern/recommendations", headers=headers,
                           json={"budget": "premium", "gameplay": ["Adventure"], "limit": 3})
    assert response.status_code == 200, response.json
    body = response.json
    assert len(body["games"]) == 3 and body["model"]["kind"] == "games"
    assert {"name", "score", "reasons"} <= set(body["games"][0])
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(("payload", "field", "message"), [
    ({"budget": "premium", "gameplay": ["Knitting"]}, "gameplay", "Unknown gameplay style: Knitting."),
    ({"budget": "premium", "limit": 0}, "limit", "Number must be between 1 and 50."),
    ({"budget": "premium", "limit": 51}, "limit", "Number must be between 1 and 50."),
    ({"budget": "royal"}, "budget", "Must be one of cheap, standard, premium."),
    ({"gameplay": ["Adventure"]}, "budget", "Send the budget: cheap, standard or premium."),
    ({"budget": "cheap", "gameplay": "Adventure"}, "gameplay", "Must be a list of gameplay"),
])
def test_recommendations_api_rejects_bad_bodies(client, runner, auth, demo, payload, field,
                                                message):
    token = token_for(runner, auth, "staff")
    response = client.post("/api/v1/tavern/recommendations", json=payload,
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    assert any(message in text for text in response.json["error"]["fields"][field])


def test_recommendations_api_needs_a_token(client):
    assert client.post("/api/v1/tavern/recommendations", json={"budget": "cheap"}).status_code == 401


def test_the_live_list_carries_the_csrf_token_only_without_javascript(client, htmx_client, auth,
                                                                        demo):
    auth.login("host")
    fragment = htmx_client.get("/tavern/suggestions?budget=premium&gameplay=RPG")
    assert b'name="csrf_token"' not in fragment.data  # htmx sends the page's X-CSRFToken header
    page = client.get("/tavern/?budget=premium&gameplay=RPG")
    suggestions = page.data[page.data.index(b'id="suggestions"'):]
    assert b'name="csrf_token"' in suggestions


def test_cards_are_cached_for_the_check_interval_then_reloaded(app, demo, monkeypatch):
    from webapp.tavern import cards as cards_module

    with app.test_request_context():
        cache = cards_module.CardCache(max_age=60)
        assert cache.cards(["Elden Ring", "No Such Game"])["Elden Ring"].price_text == "31.99"
        db.session.execute(Game.__table__.update().where(Game.name == "Elden Ring")
                           .values(price_per_hour=30))
        db.session.commit()
        assert cache.cards(["Elden Ring"])["Elden Ring"].price_text == "31.99"  # still fresh
        # Relative to the cache's birth: the machine's monotonic clock may already be past any
        # fixed value (it counts from boot on Linux).
        aged = cache._born + 61
        monkeypatch.setattr(cards_module.time, "monotonic", lambda: aged)
        assert cache.cards(["Elden Ring"])["Elden Ring"].price_text == "30.00"  # aged out


@pytest.mark.parametrize("kind, algorithm", [("games", "multinomial_nb"), ("games", "knn"),
                                             ("dough", "linear")])
def test_cli_trains_with_the_chosen_algorithm(app, runner, demo, kind, algorithm):
    from webapp.registry import ModelVersion

    result = runner.invoke(args=["models", "train", kind, "--algorithm", algorithm, "--wait"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        newest = db.session.scalar(select(ModelVersion).where(ModelVersion.kind == kind)
                                   .order_by(ModelVersion.id.desc()))
        assert algorithm in (newest.params.get("algorithm"), newest.params.get("model_type"))


def shown_games(data: bytes) -> list[str]:
    """The games a suggestion list shows, in order."""
    return [html.unescape(name.decode())
            for name in re.findall(rb'class="suggestion" data-game="([^"]+)"', data)]


def deactivate(htmx_client, app, names) -> None:
    """Stop suggesting ``names`` as staff do, through the catalogue's active toggle."""
    with app.app_context():
        ids = db.session.scalars(select(Game.id).where(Game.name.in_(names))).all()
    for game_id in ids:
        response = htmx_client.post(f"/tavern/games/{game_id}/active", data={"active": "no"})
        assert response.status_code == 200


def test_deactivated_games_leave_the_live_list(app, client, htmx_client, runner, auth, demo):
    """The served model still knows a deactivated game until the next retrain: the list (and
    the API) must skip it anyway, and show the empty state once no active game is left."""
    auth.login("staff")
    query = "/tavern/suggestions?budget=premium&gameplay=Adventure&gameplay=RPG"
    before = shown_games(htmx_client.get(query).data)
    assert len(before) == 5
    deactivate(htmx_client, app, before[:2])
    after = shown_games(htmx_client.get(query).data)
    assert len(after) == 5 and not set(before[:2]) & set(after)
    assert after[:3] == before[2:]  # the rest keep their order

    token = token_for(runner, auth, "host")
    api = client.post("/api/v1/tavern/recommendations", headers={
        "Authorization": f"Bearer {token}"}, json={"budget": "premium",
                                                   "gameplay": ["Adventure", "RPG"]})
    assert [game["name"] for game in api.json["games"]] == after

    with app.app_context():
        everything = db.session.scalars(select(Game.name)).all()
    deactivate(htmx_client, app, everything)
    empty = htmx_client.get(query)
    assert empty.status_code == 200
    assert b'class="suggestion"' not in empty.data and b"They picked this" not in empty.data
    assert b"No active games in the catalogue." in empty.data
    api = client.post("/api/v1/tavern/recommendations", headers={
        "Authorization": f"Bearer {token}"}, json={"budget": "premium"})
    assert api.status_code == 200 and api.json["games"] == []


def test_a_pick_of_an_inactive_game_is_refused_with_422(app, htmx_client, auth, demo):
    auth.login("staff")
    deactivate(htmx_client, app, ["Elden Ring"])
    with app.app_context():
        game_id = db.session.scalar(select(Game.id).where(Game.name == "Elden Ring"))
    response = htmx_client.post("/tavern/picks", data={
        "game_id": str(game_id), "budget": "premium", "gameplay": "Adventure",
        "suggested": "Elden Ring", "model_version": "v1"})
    assert response.status_code == 422
    assert "Elden Ring is not offered any more" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(GamePick).where(GamePick.synthetic.is_(False))) is None


def test_something_else_without_javascript_records_the_pick(app, client, auth, demo):
    """The no-JS "They picked something else" form sends the budget and styles but no
    suggestions or model version: those fields arrive missing, not empty (was a 500)."""
    auth.login("host")
    with app.app_context():
        game_id = db.session.scalar(select(Game.id).where(Game.name == "Elden Ring"))
    response = client.post("/tavern/picks", data={
        "game_id": str(game_id), "budget": "cheap", "gameplay": "Sport"})
    assert response.status_code == 303
    with app.app_context():
        pick = db.session.scalar(select(GamePick).where(GamePick.synthetic.is_(False)))
        assert (pick.game_name, pick.budget, pick.gameplay, pick.suggested,
                pick.model_version) == ("Elden Ring", "cheap", ["Sport"], [], None)
