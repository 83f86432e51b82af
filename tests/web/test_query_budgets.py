"""SQL statements per request, against a budget: a page that starts querying once per row
(an N+1) fails here, whatever the machine's speed.

The demo data gives every page rows to show. Each budget is the count measured when the test
was written (with the per-worker caches warm, as in production) plus a little room. Tables are
also checked at two page sizes: the count must not change, which is what an N+1 breaks.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.support import counting_statements
from webapp.extensions import db


@pytest.fixture
def demo(app, runner):
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output




def first_id(app, model):
    with app.app_context():
        return db.session.scalar(select(model.id).order_by(model.id))


#: (path, htmx?, budget). Paths with ``{...}`` are filled from the demo data.
PAGES = [
    ("/pizzeria/predict?reservations=20", True, 2),
    ("/pizzeria/nights", False, 8),
    ("/tavern/suggestions?budget=premium&gameplay=RPG", True, 2),
    ("/tavern/games", False, 10),
    ("/gifts/items", False, 12),
    ("/gifts/queue", False, 12),
    ("/gifts/rules", False, 11),
    ("/gifts/labels", False, 15),
    ("/gifts/brief/proposals?occasion=onboarding&budget_min=30&budget_max=60&recipients=5"
     "&themes=coffee", True, 5),
    ("/gifts/labels/try/suggestions?title=Espresso+beans&vendor=Northside+Roasters&price=18.50",
     True, 2),
    ("/gifts/labels/try", False, 2),
    ("/gifts/clients", False, 4),
    ("/gifts/clients/{client}", False, 6),
    ("/gifts/gifts/{gift}", False, 6),
]


@pytest.mark.parametrize("path, htmx, budget", PAGES)
def test_each_page_stays_within_its_query_budget(app, client, auth, demo, path, htmx, budget):
    from webapp.gifts.models import Client, Gift

    # The steady state, as in production: the per-worker caches (models, the tavern's cards,
    # the gift catalogue) are warm, not rebuilt at every request as the other tests want.
    app.config.update(MODEL_CHECK_SECONDS=60.0, GIFTS_CATALOGUE_SECONDS=60.0)
    auth.login("staff")
    path = path.format(client=first_id(app, Client), gift=first_id(app, Gift))
    headers = {"HX-Request": "true"} if htmx else {}
    client.get(path, headers=headers)  # warm: models load, settings rows exist
    with counting_statements(app) as statements:
        response = client.get(path, headers=headers)
    assert response.status_code == 200, path
    assert len(statements) <= budget, (
        f"{path} ran {len(statements)} SQL statements (budget {budget}):\n"
        + "\n".join(s.splitlines()[0][:120] for s in statements))


def test_the_items_table_does_not_query_per_row(app, client, auth, demo):
    """A page of 25 items and a page of 50 run the same number of statements."""
    auth.login("staff")
    counts = []
    for size in (25, 50):
        app.config["PAGE_SIZE"] = size
        client.get("/gifts/items")
        with counting_statements(app) as statements:
            assert client.get("/gifts/items").status_code == 200
        counts.append(len(statements))
    assert counts[0] == counts[1], counts


def test_the_games_catalogue_does_not_query_per_row(app, client, auth, demo):
    auth.login("staff")
    counts = []
    for size in (10, 50):
        app.config["PAGE_SIZE"] = size
        client.get("/tavern/games")
        with counting_statements(app) as statements:
            assert client.get("/tavern/games").status_code == 200
        counts.append(len(statements))
    assert counts[0] == counts[1], counts
