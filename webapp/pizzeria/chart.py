"""The evaluation chart: nights, hold-out nights and each model's fit, as inline-ready SVG.

Matplotlib's object API only: pyplot keeps global figures and state, which is neither
thread-safe nor free of leaks in a web process. Import this module lazily; matplotlib costs
a few hundred milliseconds to import.
"""

from __future__ import annotations

import io
import threading
from html import escape

import matplotlib
from matplotlib.figure import Figure

from ml.dough import DoughEvaluation

TITLE = "Doughs against reservations: training nights, hold-out nights and each model's fit"
MUTED, HOLDOUT, LINEAR, POLYNOMIAL, MULTI = "#c3c9d4", "#cf222e", "#1f6feb", "#1a7f37", "#9a6700"
# A fixed salt makes element ids, and so the whole document, the same on every render; text
# stays text instead of glyph paths, which keeps the file small and the labels searchable.
# One bundled font, named alone: every text element repeats the family list.
SVG_STYLE = {"svg.hashsalt": "curate", "svg.fonttype": "none", "font.sans-serif": ["DejaVu Sans"]}
# rc_context swaps matplotlib's process-wide rcParams: two threads rendering at once would
# restore each other's settings mid-draw (random ids, other fonts), so renders take turns.
_RENDER_LOCK = threading.Lock()


def evaluation_svg(evaluation: DoughEvaluation) -> str:
    """Render ``evaluation`` as an SVG document without the XML prolog, to inline or serve."""
    with _RENDER_LOCK, matplotlib.rc_context(SVG_STYLE):
        svg = _draw(evaluation)
    svg = svg[svg.index("<svg"):]
    # A <title> first inside <svg> is the accessible name when the SVG is inlined.
    head_end = svg.index(">") + 1
    return (f'{svg[:head_end - 1]} role="img" aria-labelledby="chart-title">'
            f'<title id="chart-title">{escape(TITLE)}</title>{svg[head_end:]}')


def _draw(evaluation: DoughEvaluation) -> str:
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    # No alpha on the many training points: SVG repeats a marker's style for every point.
    _points(ax, evaluation.train_points, "o", color=MUTED, markersize=3.5, label="training nights")
    _points(ax, evaluation.holdout_points, "o", markerfacecolor="none", color=HOLDOUT,
            markersize=5.5, label="hold-out")
    curves = (("linear", LINEAR, "linear"),
              ("polynomial", POLYNOMIAL, f"polynomial (degree {evaluation.degree})"))
    for name, color, label in curves:
        xs, ys = zip(*evaluation.curves[name], strict=True)
        ax.plot(xs, ys, color=color, linewidth=2, label=label)
    _points(ax, evaluation.multi_holdout_predictions, "x", color=MULTI, markersize=5,
            label="multi (hold-out predictions)")
    ax.set_xlabel("Reservations")
    ax.set_ylabel("Doughs")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(color="#dde1e8", linewidth=0.6)
    ax.legend(loc="upper left", frameon=False, fontsize="small")
    fig.tight_layout()
    buffer = io.StringIO()
    # Date and Creator would change with the clock and the library version.
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Type": None,
                                                "Format": None})
    return buffer.getvalue()


def _points(ax, points, marker: str, **style) -> None:
    """Plot (x, y) pairs as markers; an empty series still gets its legend entry."""
    xs, ys = zip(*points, strict=True) if points else ((), ())
    ax.plot(xs, ys, linestyle="none", marker=marker, **style)
