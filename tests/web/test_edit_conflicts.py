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
