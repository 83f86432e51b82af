"""Try the labeller: the page, the live suggestions fragment (rules only, with a model), its
validation and empty states, its per-worker cache of the rules, and access."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ml import store
from ml.gift_items import DEMO_GROUPS, generate_items
from ml.items import ItemData
from ml.label_model import LabelExample, train_labels
from tests.gift_fixtures import make_group
from tests.support import counting_statements
from webapp import registry
from webapp.extensions import db
from webapp.gifts import try_labels
from webapp.gifts.models import NAME_MAX, Label, Rule

PAGE = "/gifts/labels/try"
FRAGMENT = "/gifts/labels/try/suggestions"
FIELDS = ("sku", "name", "description", "vendor", "category", "price", "local", "sustainable",
          "brandable", "perishable")


def add_rule(name: str, value: str, labels: list[Label], priority: int = 0) -> Rule:
    """A rule "name/description contains ``value``" giving ``labels`` (added, not committed)."""
    rule = Rule(name=name, priority=priority, condition={"match": "all", "conditions": [
        {"field": "text", "op": "contains", "value": value}]})
    rule.labels = labels
    db.session.add(rule)
    return rule


def seed_vocabulary() -> dict[str, Label]:
    """The demo's groups (occasion, theme: several labels; audience: one) and two rules
    (inside an app context); returns the labels by ``group:label`` name."""
    groups = {name: make_group(name, labels, multi)
              for name, (multi, labels) in DEMO_GROUPS.items()}
    db.session.flush()
    label = {f"{group.name}:{lab.name}": lab for group in groups.values() for lab in group.labels}
    add_rule("Coffee things", "coffee", [label["theme:coffee"]])
    add_rule("Welcome packs", "welcome", [label["occasion:onboarding"],
                                          label["audience:new hires"]], priority=1)
    db.session.commit()
    return label


@pytest.fixture
def vocab(app) -> None:
    """The vocabulary and rules of :func:`seed_vocabulary`."""
    with app.app_context():
        seed_vocabulary()


def examples(n: int = 200) -> list[LabelExample]:
    """Demo catalogue items with the labels a careful person gives them."""
    return [LabelExample(ItemData(id=i, **{name: row[name] for name in FIELDS}), row["labels"])
            for i, row in enumerate(generate_items(n, seed=5))]


def activate_label_model(app):
    """Train, publish and activate a label model on the demo groups; returns the model."""
    groups = {group: labels for group, (_, labels) in DEMO_GROUPS.items()}
    single = {group for group, (multi, _) in DEMO_GROUPS.items() if not multi}
    trained = train_labels(examples(), groups, single, seed=1)
    with app.app_context():
        meta = store.publish(app.config["MODEL_DIR"], "labels", trained)
        path = str(Path(app.config["MODEL_DIR"]) / "labels" / f"{meta.version}.joblib")
        registry.add_candidate("labels", meta, path, "test")
        registry.activate("labels", meta.version, "test", reason="test")
    return trained.model, meta.version


def chips(html: str, group: str, kind: str) -> list[str]:
    """The labels shown in ``group``'s rules or model line of the fragment, in order."""
    import re

    section = html.split(f'data-group="{group}"', 1)[1].split("</section>", 1)[0]
    line = section.split(f'class="{kind}-suggestions"', 1)[1].split("</p>", 1)[0]
    return re.findall(r'data-label="([^"]+)"', line)


def test_staff_see_the_page_with_its_live_form(client, auth, vocab):
    auth.login("staff")
    response = client.get(PAGE)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>Try the labeller</h1>" in html
    assert 'hx-get="/gifts/labels/try/suggestions"' in html
    assert "input changed delay:150ms" in html
    assert 'maxlength="300"' in html  # the title's limit reaches the browser
    assert '<label for="try-title">Title</label>' in html and "autofocus" in html
    assert "Type a title" in html  # nothing typed yet


def test_the_labels_page_links_to_the_labeller(client, auth, vocab):
    auth.login("staff")
    assert 'href="/gifts/labels/try"' in client.get("/gifts/labels").get_data(as_text=True)


def test_fragment_with_rules_only(htmx_client, auth, vocab):
    auth.login("staff")
    response = htmx_client.get(FRAGMENT, query_string={
        "title": "Coffee beans", "description": "A warm welcome pack"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html and html.lstrip().startswith('<section id="try-suggestions"')
    assert "No label model yet — rules only" in html
    assert chips(html, "theme", "rule") == ["coffee"]
    assert "rule “Coffee things”" in html
    assert chips(html, "occasion", "rule") == ["onboarding"]
    assert chips(html, "audience", "rule") == ["new hires"]
    assert chips(html, "theme", "model") == []
    assert 'data-live="rules"' in html and 'data-live="model"' not in html
    assert "X-Model-Version" not in response.headers


def test_the_first_matching_rule_wins_a_single_label_group(app, htmx_client, auth, vocab):
    with app.app_context():
        everyone = db.session.scalar(db.select(Label).where(Label.name == "everyone"))
        add_rule("Mugs for all", "mug", [everyone], priority=-1)
        db.session.commit()
    auth.login("staff")
    html = htmx_client.get(FRAGMENT, query_string={"title": "Welcome mug"}).get_data(
        as_text=True)
    assert chips(html, "audience", "rule") == ["everyone"]  # one label per item: the first rule
    assert chips(html, "occasion", "rule") == ["onboarding"]


def test_fragment_with_a_trained_model(app, htmx_client, auth, vocab):
    model, version = activate_label_model(app)
    auth.login("staff")
    query = {"title": "Espresso beans, dark roast", "description": "Single origin coffee",
             "vendor": "Northside Roasters", "category": "coffee", "price": "18.50",
             "local": "y"}
    response = htmx_client.get(FRAGMENT, query_string=query)
    assert response.status_code == 200
    assert response.headers["X-Model-Version"] == version
    html = response.get_data(as_text=True)
    assert f"<code>{version}</code>" in html
    item = ItemData(0, query["title"], query["description"], query["vendor"], query["category"],
                    None, 18.5, local=True)
    expected = model.suggest([item])[0]  # the batch path: what the fast path must agree with
    assert expected
    for group in DEMO_GROUPS:
        wanted = [label.partition(":")[2] for label, _ in expected
                  if label.startswith(f"{group}:")]
        assert chips(html, group, "model") == wanted, group
    label, confidence = expected[0]
    assert f">{round(confidence * 100)}%<" in html
    assert chips(html, "theme", "rule") == ["coffee"]  # the rules still show beside the model
    assert "rules only" not in html


def test_a_group_the_model_was_not_trained_for(app, htmx_client, auth, vocab):
    activate_label_model(app)
    with app.app_context():
        make_group("mood", ("cosy",))
        db.session.commit()
    auth.login("staff")
    html = htmx_client.get(FRAGMENT, query_string={"title": "Tea"}).get_data(as_text=True)
    assert "not trained for this group" in html.split('data-group="mood"', 1)[1]


@pytest.mark.parametrize("query, message", [
    ({"title": "x" * (NAME_MAX + 1)}, f"Title: at most {NAME_MAX} characters (this one has 301)"),
    ({"title": "Mug", "vendor": "v" * 201}, "Vendor: at most 200 characters"),
    ({"title": "Mug", "description": "d" * (try_labels.DESCRIPTION_MAX + 1)},
     "Description: at most 5,000 characters"),
    ({"title": "Mug", "category": "c" * 121}, "Category: at most 120 characters"),
    ({"title": "Mug", "price": "-1"}, "Unit price: give a price from 0 to 1,000,000"),
    ({"title": "Mug", "price": "nan"}, "Unit price: give a price from 0 to"),
    ({"title": "Mug", "price": "cheap"}, "Unit price: give a number"),
])
def test_invalid_input_is_refused_with_a_message(htmx_client, auth, vocab, query, message):
    auth.login("staff")
    response = htmx_client.get(FRAGMENT, query_string=query)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html
    assert 'role="alert"' in html and "data-group=" not in html


def test_the_page_shows_errors_by_their_fields_too(client, auth, vocab):
    auth.login("staff")
    response = client.get(PAGE, query_string={"title": "x" * (NAME_MAX + 1), "price": "-2"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<h1>Try the labeller</h1>" in html
    assert 'id="try-title-error"' in html and 'id="try-price-error"' in html
    assert 'aria-describedby="try-title-help try-title-error"' in html
    assert 'value="-2"' in html  # what was typed stays in the form


@pytest.mark.parametrize("title", ["", "   "])
def test_empty_state_until_a_title_is_typed(htmx_client, auth, vocab, title):
    auth.login("staff")
    response = htmx_client.get(FRAGMENT, query_string={"title": title, "vendor": "Roasters"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Type a title" in html and "data-group=" not in html


def test_empty_state_without_label_groups(htmx_client, auth):
    auth.login("staff")
    html = htmx_client.get(FRAGMENT, query_string={"title": "Mug"}).get_data(as_text=True)
    assert "There are no label groups yet" in html


def test_input_is_escaped(htmx_client, auth, vocab):
    auth.login("staff")
    response = htmx_client.get(PAGE, query_string={"title": "<script>x</script>"},
                               headers={"HX-Boosted": "true"})  # the whole page, with the form
    html = response.get_data(as_text=True)
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_without_javascript_the_page_shows_the_suggestions(client, auth, vocab):
    auth.login("staff")
    response = client.get(PAGE, query_string={"title": "Coffee mug"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<h1>Try the labeller</h1>" in html
    assert chips(html, "theme", "rule") == ["coffee"]


@pytest.mark.parametrize("path", [PAGE, FRAGMENT])
def test_hosts_get_403(client, auth, path):
    auth.login("host")
    assert client.get(path, query_string={"title": "Mug"}).status_code == 403


@pytest.mark.parametrize("path", [PAGE, FRAGMENT])
def test_anonymous_users_are_sent_to_log_in(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_admins_may_use_it(client, auth, vocab):
    auth.login("admin")
    assert client.get(PAGE).status_code == 200




def test_keystrokes_reuse_the_rules_and_the_model(app, htmx_client, auth, vocab):
    activate_label_model(app)
    app.config.update(MODEL_CHECK_SECONDS=60.0, GIFTS_CATALOGUE_SECONDS=60.0)
    auth.login("staff")
    htmx_client.get(FRAGMENT, query_string={"title": "Cof"})  # warm: rules, model
    with counting_statements(app) as statements:
        for title in ("Coff", "Coffe", "Coffee"):
            assert htmx_client.get(FRAGMENT, query_string={"title": title}).status_code == 200
    rule_reads = [s for s in statements if "gifts_rule" in s or "gifts_label" in s
                  or "model_version" in s]
    assert rule_reads == []
    assert len(statements) <= 3  # per keystroke: at most the session's user


def test_a_stale_setup_is_refreshed_in_the_background(app, vocab):
    cache = try_labels.SetupCache(app, max_age=3600)
    with app.app_context():
        first = cache.get()
        assert [rule.name for rule in first.rules] == ["Coffee things", "Welcome packs"]
        tea = db.session.scalar(db.select(Label).where(Label.name == "tea"))
        add_rule("Tea things", "tea", [tea], priority=5)
        db.session.commit()
        assert cache.get() is first  # fresh enough: no query
        cache._built -= 7200  # an hour later
        assert cache.get() is first  # the stale copy still answers at once...
    for thread in threading.enumerate():
        if thread.name == "gifts-try-labels":
            thread.join(timeout=30)
    with app.app_context():
        refreshed = cache.get()  # ...and the next keystroke sees the new rule
    assert [rule.name for rule in refreshed.rules][-1] == "Tea things"


def test_with_max_age_zero_every_request_sees_an_edited_rule(app, htmx_client, auth, vocab):
    auth.login("staff")
    assert chips(htmx_client.get(FRAGMENT, query_string={"title": "Green tea"}).get_data(
        as_text=True), "theme", "rule") == []
    with app.app_context():
        tea = db.session.scalar(db.select(Label).where(Label.name == "tea"))
        add_rule("Tea things", "tea", [tea])
        db.session.commit()
    assert chips(htmx_client.get(FRAGMENT, query_string={"title": "Green tea"}).get_data(
        as_text=True), "theme", "rule") == ["tea"]
