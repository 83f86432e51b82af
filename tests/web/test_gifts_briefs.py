"""Briefs and live proposals, swap and lock, saving a gift, the gift editor, clients."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from tests.gift_fixtures import seed_brief_catalogue
from tests.support import counting_statements, table_of
from webapp.extensions import db
from webapp.gifts.models import Client, Gift, GiftLine, Item, ProposalEvent


@pytest.fixture
def catalogue(app):
    """40 items over 8 categories, themed, two clients."""
    with app.app_context():
        seed_brief_catalogue()


BRIEF = {"occasion": "onboarding", "budget_min": "30", "budget_max": "60", "recipients": "12",
         "themes": ["coffee"]}


def test_the_brief_page_starts_empty(client, auth, catalogue):
    auth.login("staff")
    page = client.get("/gifts/brief")
    assert page.status_code == 200
    assert b"No brief yet." in page.data and b'name="themes"' in page.data


def test_a_brief_gets_three_bundles_within_budget(app, htmx_client, auth, catalogue):
    auth.login("staff")
    response = htmx_client.get("/gifts/brief/proposals", query_string=BRIEF)
    assert response.status_code == 200 and b"<html" not in response.data
    assert response.data.count(b'class="card bundle"') == 3
    assert b"theme: coffee" in response.data and b"per recipient" in response.data
    assert b'<div id="brief-state">' in response.data
    with app.app_context():
        event = db.session.scalar(select(ProposalEvent))
        assert event.event == "shown" and len(event.bundles) == 3
        assert event.brief["themes"] == ["coffee"]


def test_exclusions_and_an_infeasible_brief(htmx_client, auth, catalogue):
    auth.login("staff")
    response = htmx_client.get("/gifts/brief/proposals", query_string={
        **BRIEF, "budget_min": "1", "budget_max": "4"})
    assert b"No bundle fits this brief" in response.data
    assert b"No item under 4.00 matches &#39;coffee&#39;." in response.data
    excluded = htmx_client.get("/gifts/brief/proposals", query_string={
        **BRIEF, "themes": [], "exclude": ["perishable"]})
    assert b"Chocolate" not in excluded.data


def test_a_bad_budget_is_reported_in_place(htmx_client, auth, catalogue):
    auth.login("staff")
    response = htmx_client.get("/gifts/brief/proposals", query_string={
        **BRIEF, "budget_min": "80", "budget_max": "20"})
    assert response.status_code == 200
    assert b"The highest budget must be at least the lowest." in response.data


def shown_ids(data: bytes) -> list[int]:
    return [int(found) for found in re.findall(rb'data-item-id="(\d+)"', data)]


def first_item_id(data: bytes) -> int:
    return shown_ids(data)[0]


def test_swap_replaces_an_item_and_lock_keeps_one(app, htmx_client, auth, catalogue):
    auth.login("staff")
    first = htmx_client.get("/gifts/brief/proposals", query_string=BRIEF)
    swapped_id = first_item_id(first.data)
    swapped = htmx_client.get("/gifts/brief/proposals",
                              query_string={**BRIEF, "swap": swapped_id})
    assert f'name="avoid" value="{swapped_id}" form="brief-form"'.encode() in swapped.data
    assert swapped_id not in shown_ids(swapped.data)
    with app.app_context():
        event = db.session.scalar(select(ProposalEvent).where(
            ProposalEvent.event == "swapped_out"))
        assert event.item_id == swapped_id
    kept = first_item_id(swapped.data)
    locked = htmx_client.get("/gifts/brief/proposals",
                             query_string={**BRIEF, "avoid": swapped_id, "toggle_lock": kept})
    assert f'name="lock" value="{kept}" form="brief-form"'.encode() in locked.data
    assert b'aria-pressed="true"' in locked.data


def test_saving_a_bundle_creates_a_gift_and_the_editor_updates_totals(app, client, auth,
                                                                       catalogue):
    auth.login("staff")
    with app.app_context():
        acme = db.session.scalar(select(Client).where(Client.name == "Acme Labs"))
        items = db.session.scalars(select(Item).order_by(Item.id).limit(2)).all()
        acme_id, (a, b) = acme.id, [(item.id, item.unit_price) for item in items]
    response = client.post("/gifts/brief/save", data={
        **BRIEF, "client_id": acme_id, "name": "Welcome box", "lines": f"{a[0]}:2|{b[0]}:1"})
    assert response.status_code == 303
    gift_url = response.headers["Location"]
    with app.app_context():
        gift = db.session.scalar(select(Gift))
        assert (gift.name, gift.status, gift.recipients, gift.themes) == (
            "Welcome box", "proposed", 12, ["coffee"])
        assert gift.cost_per_recipient == a[1] * 2 + b[1]
        line_id = gift.lines[0].id
        gift_id = gift.id
    page = client.get(gift_url)
    assert b"Welcome box" in page.data
    updated = client.post(f"/gifts/gifts/{gift_id}/lines/{line_id}", data={"quantity": "5"},
                          headers={"HX-Request": "true"})
    assert updated.status_code == 200
    assert f"{a[1] * 5 + b[1]:.2f}".encode() in updated.data
    bad = client.post(f"/gifts/gifts/{gift_id}/lines/{line_id}", data={"quantity": "0"},
                      headers={"HX-Request": "true"})
    assert bad.status_code == 422 and b"1 to 999." in bad.data


def test_over_budget_warning_picker_and_remove(app, client, auth, catalogue):
    auth.login("staff")
    with app.app_context():
        acme = db.session.scalar(select(Client).where(Client.name == "Acme Labs"))
        gift = Gift(client_id=acme.id, name="Tiny", budget_max=Decimal("6.00"))
        db.session.add(gift)
        db.session.commit()
        gift_id = gift.id
    htmx = {"HX-Request": "true"}
    picker = client.get(f"/gifts/gifts/{gift_id}/picker?q=mug", headers=htmx)
    assert b"Mug 2" in picker.data and b"Coffee 0" not in picker.data
    with app.app_context():
        mug = db.session.scalar(select(Item).where(Item.name == "Mug 2"))
        mug_id = mug.id
    added = client.post(f"/gifts/gifts/{gift_id}/lines", data={"item_id": mug_id}, headers=htmx)
    assert b"Mug 2" in added.data and b"Over budget by" in added.data
    with app.app_context():
        line_id = db.session.scalar(select(GiftLine.id))
    removed = client.post(f"/gifts/gifts/{gift_id}/lines/{line_id}/delete", headers=htmx)
    assert b"Over budget" not in removed.data and b"No items yet" in removed.data
    missing = client.post(f"/gifts/gifts/{gift_id}/lines", data={"item_id": "999999"},
                          headers=htmx)
    assert missing.status_code == 422


def test_marking_a_gift_sent_records_feedback(app, client, auth, catalogue):
    auth.login("staff")
    with app.app_context():
        acme = db.session.scalar(select(Client).where(Client.name == "Acme Labs"))
        gift = Gift(client_id=acme.id, name="Box", occasion="onboarding")
        db.session.add(gift)
        db.session.commit()
        gift_id = gift.id
    response = client.post(f"/gifts/gifts/{gift_id}", data={
        "name": "Box", "status": "sent", "recipients": "3", "budget_max": "",
        "gift_date": "2026-12-01"})
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(Gift, gift_id).gift_date.date().isoformat() == "2026-12-01"
        assert db.session.scalar(select(func.count()).select_from(ProposalEvent)
                                 .where(ProposalEvent.event == "sent")) == 1


def test_clients_create_duplicate_and_history(app, client, auth, catalogue):
    auth.login("staff")
    created = client.post("/gifts/clients", data={"name": "Harbor  Health",
                                                  "industry": "Healthcare"})
    assert created.status_code == 303
    duplicate = client.post("/gifts/clients", data={"name": "harbor health"})
    assert duplicate.status_code == 422 and b"There is already a client called" in duplicate.data
    page = client.get(created.headers["Location"])
    assert b"Harbor Health" in page.data and b"No gifts yet." in page.data
    with app.app_context():
        assert db.session.scalar(select(Client.industry).where(
            Client.name == "Harbor Health")) == "healthcare"


def test_avoid_repeats_leaves_out_what_the_client_received(app, htmx_client, auth, catalogue):
    auth.login("staff")
    with app.app_context():
        acme = db.session.scalar(select(Client).where(Client.name == "Acme Labs"))
        coffees = db.session.scalars(select(Item).where(Item.category == "coffee")).all()
        gift = Gift(client_id=acme.id, name="Before", status="sent", occasion="onboarding")
        gift.lines = [GiftLine(item_id=item.id, item_name=item.name, unit_price=item.unit_price)
                      for item in coffees]
        db.session.add(gift)
        db.session.commit()
        acme_id, names = acme.id, [item.name.encode() for item in coffees]
    response = htmx_client.get("/gifts/brief/proposals", query_string={
        **BRIEF, "themes": [], "client_id": acme_id, "avoid_repeats": "y"})
    assert response.data.count(b'class="card bundle"') >= 1
    assert not any(b">" + name + b"</strong>" in response.data for name in names)


def test_hosts_cannot_open_briefs_or_gifts(client, auth, catalogue):
    auth.login("host")
    assert client.get("/gifts/brief").status_code == 403
    assert client.get("/gifts/clients").status_code == 403


def api_post(client, app, body, role="staff"):
    from tests.web.test_api import bearer, token_for

    return client.post("/api/v1/gifts/proposals", json=body,
                       headers=bearer(token_for(app, role, f"api-{role}")))


def test_the_proposals_api(app, client, catalogue):
    response = api_post(client, app, {"occasion": "onboarding",
                                      "budget": {"min": 30, "max": 60}, "recipients": 25,
                                      "themes": ["coffee", "local"], "exclude": ["perishable"]})
    assert response.status_code == 200
    body = response.get_json()
    assert len(body["bundles"]) == 3 and body["explanation"]
    assert body["model"] == {"kind": "gifts", "version": None, "weight": 0.0}
    for bundle in body["bundles"]:
        assert 30 <= bundle["cost_per_recipient"] <= 60
        assert any("theme:coffee" in item["labels"] for item in bundle["items"])
        assert {"name", "vendor", "unit_price", "quantity", "labels", "reasons"} <= set(
            bundle["items"][0])


def test_an_infeasible_brief_is_200_with_a_reason(app, client, catalogue):
    response = api_post(client, app, {"budget": {"min": 1, "max": 2}, "themes": ["coffee"]})
    assert response.status_code == 200
    assert response.get_json() == {
        "bundles": [], "explanation": "No item under 2.00 matches 'coffee'.",
        "model": {"kind": "gifts", "version": None, "weight": 0.0}}


@pytest.mark.parametrize("body, field", [
    ({}, "budget"),
    ({"budget": {"min": 50, "max": 10}}, "budget"),
    ({"budget": {"min": "1", "max": 10}}, "budget"),
    ({"budget": [1, 2]}, "budget"),
    ({"budget": {"min": 1, "max": 10}, "themes": ["knitting"]}, "themes"),
    ({"budget": {"min": 1, "max": 10}, "exclude": ["nuclear"]}, "exclude"),
    ({"budget": {"min": 1, "max": 10}, "occasion": "wedding"}, "occasion"),
    ({"budget": {"min": 1, "max": 10}, "recipients": 0}, "recipients"),
    ({"budget": {"min": 1, "max": 10}, "themes": "coffee"}, "themes"),
    # Regressions: non-strings used to reach a length check and answer 500 (or pass as text).
    ({"budget": {"min": 1, "max": 10}, "occasion": 5}, "occasion"),
    ({"budget": {"min": 1, "max": 10}, "industry": True}, "industry"),
    ({"budget": {"min": 1, "max": 10}, "industry": ["x"]}, "industry"),
    # Regression: an integer beyond a float's range overflowed in math.isfinite (500).
    ({"budget": {"min": 1, "max": 10**400}}, "budget"),
    ({"budget": {"min": -10**400, "max": 10}}, "budget"),
])
def test_bad_briefs_get_422_naming_the_field(app, client, catalogue, body, field):
    response = api_post(client, app, body)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]


def test_hosts_cannot_ask_for_proposals(app, client, catalogue):
    assert api_post(client, app, {"budget": {"min": 1, "max": 10}}, role="host").status_code \
        == 403


def test_recommender_settings_are_validated_and_saved(app, htmx_client, auth, catalogue):
    from webapp.gifts.models import gifts_settings

    auth.login("staff")
    bad = htmx_client.post("/gifts/brief/settings", data={"learned_weight": "-1",
                                                           "min_gifts": "2"})
    assert bad.status_code == 422 and b"Number must be" in bad.data
    good = htmx_client.post("/gifts/brief/settings", data={"learned_weight": "5.5",
                                                            "min_gifts": "40"})
    assert good.status_code == 200 and b"Saved" in good.data
    with app.app_context():
        settings = gifts_settings()
        assert (settings.learned_weight, settings.min_gifts) == (5.5, 40)


def test_the_catalogue_refreshes_in_the_background_only_when_it_changed(app, catalogue):
    import threading

    from webapp.gifts import recommend

    with app.app_context():
        cache = recommend.CatalogueCache(app, max_age=0.001)
        first = cache.get()
        assert len(first.candidates) == 40

        def refreshed():
            for thread in threading.enumerate():
                if thread.name == "gifts-catalogue":
                    thread.join(timeout=30)

        assert cache.get() is first  # a check starts; nothing changed
        refreshed()
        assert cache.get() is first  # same revision: not rebuilt
        refreshed()
        item = db.session.scalar(select(Item).where(Item.name == "Mug 2"))
        item.status = "rejected"
        db.session.commit()
        assert cache.get() is first  # the request is never kept waiting for a rebuild
        refreshed()
        assert len(cache.get().candidates) == 39


def seed_past_gifts(count: int) -> None:
    """``count`` sent gifts: tech clients get Roasters coffee, legal ones Tea House tea."""
    clients = {c.industry: c for c in db.session.scalars(select(Client))}
    items = db.session.scalars(select(Item).order_by(Item.id)).all()
    for number in range(count):
        industry = "tech" if number % 2 else "legal"
        vendor = "Roasters" if industry == "tech" else "Tea House"
        picks = [item for item in items if item.vendor == vendor][number % 3::5][:3]
        gift = Gift(client_id=clients[industry].id, name=f"Past {number}", status="sent",
                    occasion="onboarding", budget_min=Decimal("10"), budget_max=Decimal("80"),
                    synthetic=True)
        gift.lines = [GiftLine(item_id=item.id, item_name=item.name, unit_price=item.unit_price)
                      for item in picks]
        db.session.add(gift)
    db.session.commit()


def test_the_gift_model_trains_on_past_gifts_and_joins_the_proposals(app, htmx_client, auth,
                                                                      catalogue):
    from webapp.ml_bridge import retrain_task

    with app.app_context():
        seed_past_gifts(40)
        result = retrain_task(lambda percent, message: None, kind="gifts", trained_by="test")
        assert result["activated"], result
        metrics = result["metrics"]
        assert {"hit_rate_at_10", "recall_at_10", "popular_recall_at_10",
                "cold_recall_at_10"} <= set(metrics)
    auth.login("staff")
    acme_id = 1
    with app.app_context():
        acme_id = db.session.scalar(select(Client.id).where(Client.industry == "tech"))
    response = htmx_client.get("/gifts/brief/proposals", query_string={
        **BRIEF, "themes": [], "client_id": acme_id})
    assert f"gift model <code>{result['version']}</code>".encode() in response.data
    assert b"like past gifts" in response.data


def test_the_gift_model_refuses_to_train_on_too_few_gifts(app, catalogue):
    from webapp.ml_bridge import retrain_task

    with app.app_context():
        seed_past_gifts(5)
        with pytest.raises(ValueError, match="at least 20 past gifts"):
            retrain_task(lambda percent, message: None, kind="gifts", trained_by="test")


def test_bad_settings_without_javascript_get_the_page_with_the_errors(client, auth, catalogue):
    auth.login("staff")
    response = client.post("/gifts/brief/settings", data={"learned_weight": "x",
                                                          "min_gifts": ""})
    assert response.status_code == 422
    assert b"<html" in response.data and b"What should we send?" in response.data
    assert b"How many past gifts?" in response.data


def test_a_brief_opened_from_a_client_page_starts_clean(app, client, auth, catalogue):
    auth.login("staff")
    with app.app_context():
        acme_id = db.session.scalar(select(Client.id).where(Client.name == "Acme Labs"))
    page = client.get(f"/gifts/brief?client_id={acme_id}&avoid_repeats=y")
    assert page.status_code == 200
    assert b"No brief yet." in page.data and b"Check the brief" not in page.data
    assert f'<option selected value="{acme_id}">Acme Labs'.encode() in page.data


def test_every_bundle_offers_every_client_with_the_briefs_one_chosen(app, htmx_client, auth,
                                                                      catalogue):
    auth.login("staff")
    with app.app_context():
        acme_id = db.session.scalar(select(Client.id).where(Client.name == "Acme Labs"))
    html = htmx_client.get("/gifts/brief/proposals", query_string={
        **BRIEF, "client_id": str(acme_id)}).data.decode()
    assert html.count('class="card bundle"') == 3
    assert html.count(f'<option value="{acme_id}" selected>Acme Labs</option>') == 3
    assert html.count(">Civic Legal</option>") == 3 and html.count(" selected>") == 3


def test_the_live_block_reads_little_and_records_its_feedback_once(app, htmx_client, auth,
                                                                   catalogue):
    """Warm, a keystroke reads the user, the settings and (for the save forms) the clients,
    and writes one event: the commit comes after the rendering, so nothing is read twice."""

    app.config.update(MODEL_CHECK_SECONDS=60.0, GIFTS_CATALOGUE_SECONDS=60.0)
    auth.login("staff")
    infeasible = {**BRIEF, "budget_min": "1", "budget_max": "4"}
    htmx_client.get("/gifts/brief/proposals", query_string=BRIEF)  # warm the caches
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(ProposalEvent))
    with counting_statements(app) as statements:
        assert htmx_client.get("/gifts/brief/proposals", query_string=BRIEF).status_code == 200
        feasible, statements[:] = [table_of(s) for s in statements], []
        response = htmx_client.get("/gifts/brief/proposals", query_string=infeasible)
        assert b"No bundle fits this brief" in response.data
    statements = [table_of(s) for s in statements]
    assert sorted(feasible) == sorted(["users", "gifts_settings", "gifts_client",
                                       "INSERT INTO gifts_proposal_event"])
    assert "gifts_client" not in statements and len(statements) == 3  # no bundle to save
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ProposalEvent)) == before + 2


def test_saving_the_budget_refreshes_the_total_and_the_warning(app, client, auth, catalogue):
    """Saving the details answers with the details block only: the lines block listens for its
    gift-changed event and fetches itself again, so the total and the warning follow."""
    auth.login("staff")
    with app.app_context():
        acme = db.session.scalar(select(Client).where(Client.name == "Acme Labs"))
        mug = db.session.scalar(select(Item).where(Item.name == "Mug 2"))
        gift = Gift(client_id=acme.id, name="Box", recipients=2)
        gift.lines.append(GiftLine(item_id=mug.id, item_name=mug.name,
                                   unit_price=mug.unit_price, quantity=1, position=0))
        db.session.add(gift)
        db.session.commit()
        gift_url, price = f"/gifts/gifts/{gift.id}", mug.unit_price
    htmx = {"HX-Request": "true"}
    page = client.get(gift_url).get_data(as_text=True)
    lines_tag = re.search(r'<section id="gift-lines"[^>]*>', page).group(0)
    assert 'hx-trigger="gift-changed from:body"' in lines_tag
    assert f'hx-get="{gift_url}"' in lines_tag and 'hx-swap="outerHTML"' in lines_tag
    assert "Over budget" not in page

    saved = client.post(gift_url, headers=htmx, data={
        "name": "Box", "status": "draft", "recipients": "4", "budget_max": "1.00"})
    assert saved.status_code == 200 and "gift-changed" in saved.headers["HX-Trigger"]
    assert b'id="gift-lines"' not in saved.data  # only the details come back ...
    lines = client.get(gift_url, headers=htmx).get_data(as_text=True)  # ... then the lines
    assert lines.lstrip().startswith('<section id="gift-lines"') and "<html" not in lines
    assert f"Over budget by {price - 1:.2f} per recipient (max 1.00)" in lines
    assert f"{price * 4:.2f} for 4" in lines


def test_saving_a_proposal_as_a_gift_records_a_saved_event(app, client, auth, catalogue):
    auth.login("staff")
    with app.app_context():
        acme_id = db.session.scalar(select(Client.id).where(Client.name == "Acme Labs"))
        item_id = db.session.scalar(select(Item.id).order_by(Item.id))
    response = client.post("/gifts/brief/save", data={
        **BRIEF, "client_id": acme_id, "name": "Welcome box", "lines": f"{item_id}:1"})
    assert response.status_code == 303
    with app.app_context():
        gift_id = db.session.scalar(select(Gift.id))
        event = db.session.scalar(select(ProposalEvent).where(ProposalEvent.event == "saved"))
        assert event is not None and event.gift_id == gift_id
        assert (event.brief["occasion"], event.brief["themes"], event.created_by) == (
            "onboarding", ["coffee"], "test-staff")


def test_a_swap_lowers_the_items_score_in_the_next_proposal(app, htmx_client, auth, catalogue):
    """A swap is feedback: the catalogue the next proposal is built from counts it against the
    item for that occasion, SWAP_WEIGHT × log(1 + swaps) off its score (other occasions keep
    theirs)."""
    from ml.gifts import SWAP_WEIGHT, Brief
    from webapp.gifts import recommend as service

    brief = Brief("onboarding", 30, 60, 12, ("coffee",))
    other = Brief("retention", 30, 60, 12, ("coffee",))

    def score(item_id: int, for_brief: Brief) -> float:
        with app.app_context():  # the catalogue cache the proposals use, rebuilt (tests: 0 s)
            catalogue = service.catalogue_cache().get()
            return float(catalogue.index.scores(for_brief)[catalogue.index.position[item_id]])

    auth.login("staff")
    swapped_id = first_item_id(htmx_client.get("/gifts/brief/proposals", query_string=BRIEF).data)
    before, before_other = score(swapped_id, brief), score(swapped_id, other)
    htmx_client.get("/gifts/brief/proposals", query_string={**BRIEF, "swap": swapped_id})
    with app.app_context():
        candidate = service.catalogue_cache().get().by_id[swapped_id]
        assert candidate.past_swaps == {"onboarding": 1}
    assert score(swapped_id, brief) == pytest.approx(before - SWAP_WEIGHT * math.log(2))
    assert score(swapped_id, other) == before_other
