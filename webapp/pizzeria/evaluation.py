"""The evaluation page: every dough model and the baseline on the same hold-out, with a chart."""

from __future__ import annotations

from flask import Response, request

from webapp.htmx import render_page_or_block
from webapp.ml_bridge import dough as dough_bridge
from webapp.pizzeria import bp

TEMPLATE = "pizzeria/evaluation.html"


def chosen_degree() -> int:
    """The polynomial degree asked for (1–5, default 2)."""
    degree = request.args.get("degree", 2, type=int)
    return degree if 1 <= degree <= 5 else 2


@bp.route("/evaluation")
def evaluation():
    """Linear, polynomial, multi-feature and the naive baseline, side by side."""
    degree = chosen_degree()
    try:
        result, error = dough_bridge.evaluate(degree=degree), None
    except ValueError as failure:  # too few nights to hold any out
        result, error = None, str(failure)
    return render_page_or_block(TEMPLATE, "evaluation", evaluation=result, error=error,
                                degree=degree)


@bp.route("/evaluation.svg")
def evaluation_chart():
    """The chart of the data and each fitted model, as SVG."""
    from webapp.pizzeria.chart import evaluation_svg  # matplotlib loads only when asked for

    try:
        result = dough_bridge.evaluate(degree=chosen_degree())
    except ValueError as failure:
        return Response(str(failure), status=422, mimetype="text/plain")
    response = Response(evaluation_svg(result), mimetype="image/svg+xml")
    response.cache_control.private = True
    response.cache_control.max_age = 60
    return response
