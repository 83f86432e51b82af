"""The label vocabulary page: groups and labels (add, rename, delete only when unused), usage
counts, live sources, the settings, escaping and access."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.gifts import vocabulary
from webapp.gifts.models import (
    GiftsSettings,
    Item,
    ItemLabel,
    Label,
    LabelGroup,
    Rule,
    gifts_settings,
)


@pytest.fixture
def vocab(app) -> dict[str, int]:
    """theme (coffee used by a person and a rule item label, tea used by a rule, home unused)
    and audience (single-label, unused); ids by name."""
    with app.app_context():
        theme = vocabulary.save_group(LabelGroup(), "theme", True)
        audience = vocabulary.save_group(LabelGroup(), "audience", False)
        ids = {"theme": theme.id, "audience": audience.id}
        for group, names in ((theme, ("coffee", "tea", "home")), (audience, ("everyone",))):
            for name in names:
                ids[name] = vocabulary.save_label(Label(), group, name).id
        item = Item(name="Beans", name_key="beans", unit_price=Decimal("9"))
        other = Item(name="Mug", name_key="mug", unit_price=Decimal("5"))
        db.session.add_all([item, other])
        db.session.flush()
        db.session.add_all([
            ItemLabel(item_id=item.id, label_id=ids["coffee"], source="human", created_by="ann"),
            ItemLabel(item_id=other.id, label_id=ids["coffee"], source="rule", rule_name="r"),
        ])
        rule = Rule(name="Tea", condition={"match": "all", "conditions": [
            {"field": "text", "op": "contains", "value": "tea"}]})
        rule.labels = [db.session.get(Label, ids["tea"])]
        db.session.add(rule)
        db.session.commit()
        return ids


def label_names(app, group_id: int) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Label.name).where(Label.group_id == group_id)
                                       .order_by(Label.position)))


def test_hosts_get_403(client, auth):
    auth.login("host")
    assert client.get("/gifts/labels").status_code == 403
    assert client.post("/gifts/labels/groups", data={"name": "x"}).status_code == 403


def test_the_page_shows_groups_usage_and_live_sources(client, auth, vocab):
    auth.login("staff")
    page = client.get("/gifts/labels").data
    assert b"<html" in page and b'aria-current="page"' in page
    theme = page.split(b'data-group="theme"')[1].split(b"</section>")[0]
    coffee = theme.split(b'data-label="coffee"')[1].split(b"</tr>")[0]
    assert b'<td class="num human">1</td>' in coffee and b"<td class=\"num\">2</td>" in coffee
    assert b'data-source="rules"' in theme
    assert b"rules: a label has only 0 human labels (the model takes over at 30)" in theme
    audience = page.split(b'data-group="audience"')[1].split(b"</section>")[0]
    assert b"one label per item" in audience


def test_empty_state(client, auth):
    auth.login("staff")
    assert b"No label groups yet." in client.get("/gifts/labels").data


def test_the_list_fragment_for_htmx(htmx_client, auth, vocab):
    auth.login("staff")
    response = htmx_client.get("/gifts/labels")
    assert response.data.lstrip().startswith(b'<div id="group-list"')
    assert b"<html" not in response.data and "HX-Request" in response.headers["Vary"]


def test_add_a_group_and_a_label(app, htmx_client, auth):
    auth.login("staff")
    created = htmx_client.post("/gifts/labels/groups", data={"name": "  occasion  ", "multi": "y"})
    assert created.status_code == 201 and "Added “occasion”.".encode() in created.data
    assert "vocabulary-changed" in created.headers["HX-Trigger"]
    with app.app_context():
        group = db.session.scalar(select(LabelGroup))
        assert group.name == "occasion" and group.multi
    card = htmx_client.post(f"/gifts/labels/groups/{group.id}/labels",
                            data={"name": "client   appreciation"})
    assert card.status_code == 200
    assert card.data.lstrip().startswith(f'<section id="group-{group.id}"'.encode())
    assert "Added “client appreciation”.".encode() in card.data
    assert label_names(app, group.id) == ["client appreciation"]


@pytest.mark.parametrize(("name", "message"), [
    ("Theme", "There is already a group called “Theme”.".encode()),
    ("a:b", "A name cannot contain “:”".encode()),
    ("!!!", b"A name needs at least one letter or digit."),
    ("  ", b"Give the group a name."),
    ("x" * 61, b"Field cannot be longer than 60 characters."),
])
def test_group_names_are_checked(htmx_client, auth, vocab, name, message):
    auth.login("staff")
    response = htmx_client.post("/gifts/labels/groups", data={"name": name})
    assert response.status_code == 422 and message in response.data
    assert response.data.lstrip().startswith(b'<section id="group-form"')


def test_label_names_are_unique_within_their_group_only(app, htmx_client, auth, vocab):
    auth.login("staff")
    taken = htmx_client.post(f"/gifts/labels/groups/{vocab['theme']}/labels",
                             data={"name": "COFFEE"})
    assert taken.status_code == 422
    assert "“theme” already has a label called “COFFEE”.".encode() in taken.data
    assert b'value="COFFEE"' in taken.data  # what was typed stays
    elsewhere = htmx_client.post(f"/gifts/labels/groups/{vocab['audience']}/labels",
                                 data={"name": "coffee"})
    assert elsewhere.status_code == 200
    assert label_names(app, vocab["audience"]) == ["everyone", "coffee"]


def test_rename_a_label_keeps_its_items_and_rules(app, htmx_client, auth, vocab):
    auth.login("staff")
    response = htmx_client.post(f"/gifts/labels/{vocab['tea']}", data={"name": "Tea & infusions"})
    assert response.status_code == 200 and "Renamed to “Tea &amp; infusions”.".encode() in response.data
    with app.app_context():
        rule = db.session.scalar(select(Rule))
        assert [label.qualified_name for label in rule.labels] == ["theme:Tea & infusions"]
    clash = htmx_client.post(f"/gifts/labels/{vocab['tea']}", data={"name": "home"})
    assert clash.status_code == 422 and "already has a label called “home”".encode() in clash.data
    assert label_names(app, vocab["theme"]) == ["coffee", "Tea & infusions", "home"]


def test_a_label_in_use_cannot_be_deleted_and_says_by_what(app, htmx_client, auth, vocab):
    auth.login("staff")
    coffee = htmx_client.post(f"/gifts/labels/{vocab['coffee']}/delete")
    assert coffee.status_code == 422
    assert "“coffee” is used by 2 items (1 by people), so it cannot be deleted.".encode() in coffee.data
    tea = htmx_client.post(f"/gifts/labels/{vocab['tea']}/delete")
    assert tea.status_code == 422 and "“tea” is used by 1 rule".encode() in tea.data
    home = htmx_client.post(f"/gifts/labels/{vocab['home']}/delete")
    assert home.status_code == 200 and "Deleted “home”.".encode() in home.data
    assert b'data-label="home"' not in home.data
    assert label_names(app, vocab["theme"]) == ["coffee", "tea"]


def test_a_group_is_deleted_only_when_its_labels_are_unused(app, htmx_client, auth, vocab):
    auth.login("staff")
    theme = htmx_client.post(f"/gifts/labels/groups/{vocab['theme']}/delete")
    assert theme.status_code == 422
    assert b"has labels in use (coffee, tea)" in theme.data
    audience = htmx_client.post(f"/gifts/labels/groups/{vocab['audience']}/delete")
    assert audience.status_code == 200 and "vocabulary-changed" in audience.headers["HX-Trigger"]
    with app.app_context():
        assert [g.name for g in db.session.scalars(select(LabelGroup))] == ["theme"]


def test_switch_a_group_to_single_label_and_rename_it(app, htmx_client, auth, vocab):
    auth.login("staff")
    response = htmx_client.post(f"/gifts/labels/groups/{vocab['theme']}", data={"name": "Themes"})
    assert response.status_code == 200 and b"one label per item" in response.data
    with app.app_context():
        group = db.session.get(LabelGroup, vocab["theme"])
        assert group.name == "Themes" and not group.multi
    clash = htmx_client.post(f"/gifts/labels/groups/{vocab['theme']}",
                             data={"name": "AUDIENCE", "multi": "y"})
    assert clash.status_code == 422 and b"already a group called" in clash.data
    assert b'value="AUDIENCE"' in clash.data


def test_without_javascript_forms_redirect_or_show_the_page(client, auth, vocab):
    auth.login("staff")
    added = client.post(f"/gifts/labels/groups/{vocab['audience']}/labels",
                        data={"name": "new hires"})
    assert added.status_code == 303 and added.location.endswith("/gifts/labels")
    refused = client.post(f"/gifts/labels/{vocab['coffee']}/delete")
    assert refused.status_code == 422 and b"<html" in refused.data
    assert b"cannot be deleted" in refused.data
    assert client.post("/gifts/labels/999/delete").status_code == 404


@pytest.mark.parametrize(("form", "status", "message"), [
    ({"min_labels_per_label": "5", "random_share": "0.25"}, 200, b"Saved."),
    ({"min_labels_per_label": "0", "random_share": "0.1"}, 422, b"Give a whole number from 1"),
    ({"min_labels_per_label": "5", "random_share": "1.5"}, 422, b"Give a number from 0 to 1."),
    ({"min_labels_per_label": "5", "random_share": "nan"}, 422, b"Give a number from 0 to 1."),
    ({"min_labels_per_label": "", "random_share": "0.1"}, 422, b"Give a whole number, at least 1."),
])
def test_settings(app, htmx_client, auth, form, status, message):
    auth.login("staff")
    response = htmx_client.post("/gifts/labels/settings", data=form)
    assert response.status_code == status and message in response.data
    assert response.data.lstrip().startswith(b'<section id="settings-card"')
    with app.app_context():
        settings = gifts_settings()
        expected = (5, 0.25) if status == 200 else (30, 0.1)
        assert (settings.min_labels_per_label, settings.random_share) == expected
        assert db.session.scalar(select(GiftsSettings.queue_order)) == "uncertain"


def test_the_threshold_changes_the_reason_shown(client, auth, vocab):
    auth.login("staff")
    client.post("/gifts/labels/settings", data={"min_labels_per_label": "1",
                                                "random_share": "0.1"})
    page = client.get("/gifts/labels").data
    assert b"rules: a label has only 0 human labels (the model takes over at 1)" in page


def test_names_are_escaped(client, auth, app):
    with app.app_context():
        group = vocabulary.save_group(LabelGroup(), "<script>alert(1)</script>", True)
        vocabulary.save_label(Label(), group, "<img src=x onerror=alert(1)>")
    auth.login("staff")
    page = client.get("/gifts/labels").data
    assert b"<script>alert(1)</script>" not in page and b"<img src=x" not in page
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page
