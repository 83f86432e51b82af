"""The admin Models page: cards, Retrain with a polling card, Activate, Roll back, errors."""

from __future__ import annotations

import re

import pytest

from tests.support import add_nights, demo_year_nights, wait_for_job
from webapp import jobs, registry


@pytest.fixture
def nights(app):
    with app.app_context():
        add_nights(demo_year_nights())


def latest_job_id(app):
    with app.app_context():
        return jobs.latest_job("retrain", "dough").id


def test_models_page_shows_an_empty_state_before_training(client, auth):
    auth.login("admin")
    response = client.get("/admin/models")
    assert response.status_code == 200
    assert b'id="model-dough"' in response.data
    assert b"Not trained yet." in response.data
    assert b'hx-trigger="every 1s"' not in response.data


def test_retrain_returns_a_polling_card_then_a_finished_one(app, htmx_client, auth, nights):
    auth.login("admin")
    response = htmx_client.post("/admin/models/dough/retrain",
                                data={"model_type": "polynomial", "degree": "2"})
    assert response.status_code == 202
    assert b"<html" not in response.data
    assert response.data.lstrip().startswith(b'<section id="model-dough"')
    assert "HX-Request" in response.headers["Vary"]
    with app.app_context():
        job = wait_for_job(latest_job_id(app))
    assert job.status == "succeeded"
    card = htmx_client.get("/admin/models/dough").data
    assert b'hx-trigger="every 1s"' not in card  # polling stops once the job ends
    assert job.result["version"].encode() in card
    assert b"activated (first model)" in card
    assert re.search(rb'class="active-version">' + job.result["version"].encode(), card)


def test_a_running_card_polls_itself(app, htmx_client, auth, nights):
    from webapp.extensions import db
    from webapp.jobs.models import Job

    auth.login("admin")
    with app.app_context():
        db.session.add(Job(kind="retrain", subject="dough", params={"kind": "dough"},
                           status="running",
                           progress=40, message="Training on 372 rows",
                           dedupe_key="retrain:dough"))
        db.session.commit()
    card = htmx_client.get("/admin/models/dough").data
    assert b'hx-trigger="every 1s"' in card
    assert b'aria-valuenow="40"' in card and b"Training on 372 rows" in card
    # A second press shows the running job instead of starting another.
    response = htmx_client.post("/admin/models/dough/retrain",
                                data={"model_type": "polynomial", "degree": "2"})
    assert response.status_code == 200
    assert b"A retrain is already running" in response.data
    with app.app_context():
        assert db.session.query(Job).count() == 1


def test_bad_retrain_options_return_422(htmx_client, auth):
    auth.login("admin")
    response = htmx_client.post("/admin/models/dough/retrain",
                                data={"model_type": "polynomial", "degree": "9"})
    assert response.status_code == 422
    assert b"Number must be between 1 and 5" in response.data
    response = htmx_client.post("/admin/models/dough/retrain",
                                data={"model_type": "quantum", "degree": "2"})
    assert response.status_code == 422 and b"Not a valid choice" in response.data


def test_failed_retrain_is_shown_with_its_error(app, htmx_client, auth):
    auth.login("admin")  # no nights at all: training must fail
    htmx_client.post("/admin/models/dough/retrain", data={"model_type": "linear", "degree": "1"})
    with app.app_context():
        wait_for_job(latest_job_id(app))
    card = htmx_client.get("/admin/models/dough").data
    assert b"Last retrain failed: ValueError: need at least 4 training nights" in card
    assert b"Recent failed retrains (1)" in card


def test_activate_and_roll_back_from_the_page(app, htmx_client, auth, nights):
    auth.login("admin")
    versions = []
    for model_type in ("polynomial", "linear"):
        htmx_client.post("/admin/models/dough/retrain", data={"model_type": model_type,
                                                              "degree": "2"})
        with app.app_context():
            versions.append(wait_for_job(latest_job_id(app)).result["version"])
    first, candidate = versions
    card = htmx_client.get("/admin/models/dough").data
    assert f'data-version="{candidate}" data-status="candidate"'.encode() in card
    response = htmx_client.post(f"/admin/models/dough/versions/{candidate}/activate")
    assert response.status_code == 200 and b"is now active" in response.data
    with app.app_context():
        assert registry.active_version("dough").version == candidate
    response = htmx_client.post("/admin/models/dough/rollback")
    assert response.status_code == 200 and f"Rolled back to {first}".encode() in response.data
    with app.app_context():
        assert registry.active_version("dough").version == first
        assert [a.reason for a in registry.activations("dough")][:2] == [
            "rollback", "activated by hand"]


def test_activating_an_unknown_version_is_422(htmx_client, auth):
    auth.login("admin")
    response = htmx_client.post("/admin/models/dough/versions/nope/activate")
    assert response.status_code == 422 and b"no dough model version" in response.data


def test_rollback_without_history_is_422(htmx_client, auth):
    auth.login("admin")
    response = htmx_client.post("/admin/models/dough/rollback")
    assert response.status_code == 422 and b"no earlier dough version" in response.data


def test_unknown_kind_is_404(client, auth):
    auth.login("admin")
    assert client.get("/admin/models/teapot").status_code == 404


def test_plain_form_post_redirects_back_to_the_page(app, client, auth, nights):
    auth.login("admin")
    response = client.post("/admin/models/dough/retrain", data={"model_type": "linear",
                                                                "degree": "1"})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/models"
    with app.app_context():
        wait_for_job(latest_job_id(app))


def test_header_badge_shows_the_served_version(app, client, auth, nights):
    auth.login("admin")
    client.post("/admin/models/dough/retrain", data={"model_type": "linear", "degree": "1"})
    with app.app_context():
        version = wait_for_job(latest_job_id(app)).result["version"]
    client.get("/pizzeria/predict?reservations=10")  # this worker loads the model
    page = client.get("/admin/models").data
    assert b'class="model-badge"' in page and version[-8:].encode() in page


def test_queue_unavailable_is_reported_plainly(app, htmx_client, auth, nights):
    app.config.update(JOBS_BACKEND="rq", REDIS_URL="redis://127.0.0.1:1/0")
    auth.login("admin")
    response = htmx_client.post("/admin/models/dough/retrain",
                                data={"model_type": "linear", "degree": "1"})
    assert response.status_code == 503
    assert b"job queue (Redis at redis://127.0.0.1:1/0) is unavailable" in response.data


def shown_metrics(card: str) -> dict[str, str]:
    """The hold-out metrics a model card lists, label -> shown value."""
    return dict(re.findall(r"<dt>(.*?) \(hold-out\)</dt><dd>(.*?)</dd>", card))


def card_of(page: str, kind: str) -> str:
    """One model's card on the whole Models page."""
    start = page.index(f'<section id="model-{kind}"')
    end = page.find('<section id="model-', start + 1)
    return page[start:end if end != -1 else len(page)]


def expected_metrics(kind: str, labels: dict[str, str]) -> dict[str, str]:
    """The active version's metrics as the card must show them (3 decimals)."""
    from webapp.templating import metric

    metrics = registry.active_version(kind).metrics
    return {label: metric(metrics.get(key)) for key, label in labels.items()}


def test_the_games_and_gifts_cards_show_their_metrics_beside_the_baselines(app, client,
                                                                           runner, auth):
    """Hit rate and precision of the games model with the popularity baseline of both, and the
    gift model's hit rate and recall with the popularity and cold-start baselines."""
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    auth.login("admin")
    client.post("/admin/models/gifts/retrain")
    with app.app_context():
        assert wait_for_job(jobs.latest_job("retrain", "gifts").id).status == "succeeded"
        games = expected_metrics("games", {
            "hit_rate_at_5": "Hit rate@5", "precision_at_5": "Precision@5",
            "baseline_hit_rate_at_5": "Popular hit@5",
            "baseline_precision_at_5": "Popular precision@5"})
        gifts = expected_metrics("gifts", {
            "hit_rate_at_10": "Hit rate@10", "recall_at_10": "Recall@10",
            "popular_hit_rate_at_10": "Popular hit@10",
            "popular_recall_at_10": "Popular recall@10",
            "cold_hit_rate_at_10": "Cold-start hit@10",
            "cold_recall_at_10": "Cold-start recall@10"})
    assert "n/a" not in games.values() and "n/a" not in gifts.values()  # the demo has hold-outs
    page = client.get("/admin/models").get_data(as_text=True)
    assert shown_metrics(card_of(page, "games")) == games
    assert shown_metrics(card_of(page, "gifts")) == gifts
