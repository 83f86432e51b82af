"""The evaluation chart: real SVG from a real evaluation, accessible and deterministic."""

from __future__ import annotations

import dataclasses
import re
import sys
import threading
import xml.etree.ElementTree as ET

import pytest

from ml.dough import Night, evaluate_dough
from ml.synthetic import generate_year
from tests.ml.conftest import WEEK
from webapp.pizzeria.chart import TITLE, evaluation_svg

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def evaluation():
    return evaluate_dough(generate_year(42), degree=3)


@pytest.fixture(scope="module")
def svg(evaluation) -> str:
    return evaluation_svg(evaluation)


def test_it_is_one_inline_svg_element_without_a_prolog(svg):
    assert svg.startswith("<svg ")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img" and root.get("aria-labelledby") == "chart-title"


def test_its_title_comes_first_and_names_the_chart(svg):
    root = ET.fromstring(svg)
    title = root[0]
    assert title.tag == f"{SVG}title" and title.get("id") == "chart-title"
    assert title.text == TITLE


def test_axes_and_legend_are_labelled_as_text(svg):
    texts = {element.text for element in ET.fromstring(svg).iter(f"{SVG}text")}
    assert {"Reservations", "Doughs", "training nights", "hold-out", "linear",
            "polynomial (degree 3)", "multi (hold-out predictions)"} <= texts


def test_every_night_and_prediction_is_drawn(svg, evaluation):
    # One <use> per marker: training nights, hold-out nights and the multi predictions, plus
    # one per legend entry of each marker style and the axis ticks.
    markers = len(re.findall(r"<use ", svg))
    nights = len(evaluation.train_points) + len(evaluation.holdout_points)
    assert markers >= nights + len(evaluation.multi_holdout_predictions)


def test_the_same_evaluation_gives_the_same_bytes(evaluation, svg):
    assert evaluation_svg(evaluation) == svg
    assert "<dc:date>" not in svg  # the render time would change every answer
    other = dataclasses.replace(evaluation, holdout_points=evaluation.holdout_points[:-1])
    assert evaluation_svg(other) != svg


def test_renders_in_parallel_without_pyplot(evaluation, svg):
    # rc_context changes process-wide settings; without the module's lock, threads rendering
    # at once undo each other's and the output varies.
    results: list[str] = []

    def render():
        results.append(evaluation_svg(evaluation))

    threads = [threading.Thread(target=render) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [svg] * 6
    assert "matplotlib.pyplot" not in sys.modules


def test_an_evaluation_with_little_data_still_renders():
    evaluation = evaluate_dough([Night(*row) for row in WEEK])  # 4 training nights, 1 held out
    svg = evaluation_svg(evaluation)
    assert ET.fromstring(svg).tag == f"{SVG}svg"
