"""The evaluation page and its chart; the live prediction's range and date."""

from __future__ import annotations

import re

import pytest

from tests.support import add_nights, demo_year_nights, wait_for_job
from webapp import jobs


@pytest.fixture
def year(app):
    with app.app_context():
        add_nights(demo_year_nights())


def test_evaluation_compares_every_model_with_the_baseline(client, auth, year):
    auth.login("host")
    page = client.get("/pizzeria/evaluation").data.decode()
    for name in ("linear", "polynomial", "multi", "baseline"):
        assert f'data-model="{name}"' in page
    assert re.search(r"polynomial: \d+% less error than linear", page), page
    assert "scored on the" in page and "most recent" in page
    assert 'src="/pizzeria/evaluation.svg?degree=2"' in page


def test_degree_can_be_chosen_and_bad_degrees_fall_back(client, htmx_client, auth, year):
    auth.login("host")
    fragment = htmx_client.get("/pizzeria/evaluation?degree=3")
    assert fragment.status_code == 200 and b"<html" not in fragment.data
    assert b'<option value="3" selected>' in fragment.data
    assert b'<option value="2" selected>' in client.get("/pizzeria/evaluation?degree=99").data


def test_chart_is_svg(client, auth, year):
    auth.login("staff")
    response = client.get("/pizzeria/evaluation.svg?degree=2")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.data.lstrip().startswith(b"<svg") and b"hold-out" in response.data


def test_too_few_nights_gives_an_empty_state_not_an_error(client, auth):
    auth.login("host")
    page = client.get("/pizzeria/evaluation")
    assert page.status_code == 200 and b"Not enough nights to evaluate yet." in page.data
    assert client.get("/pizzeria/evaluation.svg").status_code == 422


def train(app, **params):
    with app.app_context():
        job, _ = jobs.enqueue("retrain", {"kind": "dough", **params},
                              dedupe_key="retrain:dough", subject="dough")
        return wait_for_job(job.id)


def test_prediction_shows_a_range_and_accepts_a_date(app, htmx_client, auth, year):
    assert train(app).status == "succeeded"  # auto: the best model on the hold-out
    auth.login("host")
    response = htmx_client.get("/pizzeria/predict?reservations=15&date=2024-01-08")
    assert response.status_code == 200
    assert re.search(rb"usually within \xc2\xb1\d+", response.data)
    response = htmx_client.get("/pizzeria/predict?reservations=15&date=not-a-date")
    assert response.status_code == 422


def test_multi_model_predicts_for_a_given_date(app, htmx_client, auth, year):
    assert train(app, model_type="multi").status == "succeeded"
    auth.login("host")
    doughs = {
        date: int(re.search(rb'data-doughs="(\d+)"', htmx_client.get(
            f"/pizzeria/predict?reservations=30&date={date}").data)[1])
        for date in ("2024-01-08", "2024-07-08")
    }
    assert all(value > 0 for value in doughs.values())


def test_admin_is_offered_train_when_there_is_no_model(client, auth):
    auth.login("admin")
    page = client.get("/pizzeria/predict?reservations=10", headers={"HX-Request": "true"}).data
    assert b"Train the dough model" in page
    auth.logout()
    auth.login("host")
    page = client.get("/pizzeria/predict?reservations=10", headers={"HX-Request": "true"}).data
    assert b"Ask an admin to train it" in page and b"Train the dough model" not in page


def test_demo_load_trains_once(app, runner):
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    assert "trained and activated" in first.output
    second = runner.invoke(args=["demo", "load"])
    assert "already active" in second.output and "0 nights added" in second.output


def test_cli_train_with_an_algorithm(app, runner, year):
    result = runner.invoke(args=["models", "train", "dough", "--algorithm", "multi"])
    assert result.exit_code == 0, result.output
    assert "activated (first model)" in result.output
    result = runner.invoke(args=["models", "train", "dough", "--algorithm", "cubist"])
    assert result.exit_code == 2 and "'cubist' is not one of linear, polynomial, multi" in result.output


def test_tonight_works_without_javascript(app, client, auth, year):
    assert train(app).status == "succeeded"
    auth.login("host")
    page = client.get("/pizzeria/?reservations=15")  # the plain GET form's submit
    assert page.status_code == 200 and b"<html" in page.data
    assert re.search(rb"doughs\s+for 15 reservations", page.data)
    assert b"Predict</button>" in page.data
