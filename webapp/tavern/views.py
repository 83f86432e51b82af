"""The tavern's front desk: live game suggestions, and recording what the party picked."""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ml.games import BUDGETS
from webapp.extensions import db
from webapp.htmx import render_page_or_block, trigger, wants_fragment
from webapp.ml_bridge import ModelUnavailable
from webapp.ml_bridge import games as games_bridge
from webapp.tavern import bp
from webapp.tavern.cards import Card, cards
from webapp.tavern.forms_suggest import PickForm, SuggestForm
from webapp.tavern.models import Game, GamePick

TEMPLATE = "tavern/index.html"


def suggestion_context(form: SuggestForm) -> dict:
    """The suggestions for the party's choices, or why there are none."""
    budget = form.budget.data if form.budget.data in BUDGETS else "standard"
    gameplay = tuple(form.gameplay.data or ())
    try:
        unknown = games_bridge.unknown_styles(gameplay)
        known = tuple(name for name in gameplay if name not in unknown)
        suggestions, version = games_bridge.recommend(budget, known)
    except ModelUnavailable as error:
        # The query still goes with a pick of a game that was not suggested (there were none).
        return {"suggestions": [], "unavailable": str(error), "version": None, "unknown": [],
                "budget": budget, "gameplay": gameplay}
    # The bridge kept only games with an active card; the same per-worker cache answers here.
    shown = cards(s.name for s in suggestions)
    # Plain values prepared here: the same work in Jinja filters cost more than the model.
    rows = [Shown(s.name, s.score, int(s.score * 100 + 0.5), "; ".join(s.reasons),
                  shown[s.name])
            for s in suggestions if s.name in shown]
    return {"suggestions": rows, "suggested_names": "|".join(row.name for row in rows),
            "version": version,
            "unavailable": None, "unknown": unknown, "budget": budget, "gameplay": known}


@dataclass(frozen=True)
class Shown:
    """One suggestion as the list shows it."""

    name: str
    score: float
    percent: int
    reason: str
    card: Card | None


def page(form: SuggestForm, status: int = 200, block: str = "suggestions", **extra):
    """The front desk page, or one of its blocks for htmx."""
    context = {"form": form, **suggestion_context(form)}
    # The live list's own posts carry the page's CSRF header (hx-headers on <body>); only the
    # page without JavaScript needs the token inside the list's form.
    context["whole_page"] = not wants_fragment()
    if context["whole_page"] or block != "suggestions":
        form.offer_styles()
        context["recent_picks"] = recent_picks()
        context["catalogue"] = db.session.execute(
            select(Game.id, Game.name).where(Game.active).order_by(Game.name)).all()
    return render_page_or_block(TEMPLATE, block, status=status, **context, **extra)


def recent_picks(limit: int = 8) -> list[GamePick]:
    """The latest real (not synthetic) picks, newest first."""
    query = (select(GamePick).where(GamePick.synthetic.is_(False))
             .order_by(GamePick.created_at.desc(), GamePick.id.desc()).limit(limit))
    return list(db.session.scalars(query))


@bp.route("/")
def index():
    """Budget and gameplay styles in, the top 5 games out, updated at every tick."""
    return page(SuggestForm(request.args))


@bp.route("/suggestions")
def suggestions():
    """The live top-5 fragment (the whole page without JavaScript)."""
    return page(SuggestForm(request.args))


def names(joined: str | None) -> list[str]:
    """``"A|B"`` as ``["A", "B"]``; a field the form did not send (None) as no names."""
    return [name for name in (joined or "").split("|") if name]


@bp.route("/picks", methods=["POST"])
def record_pick():
    """Store what the party picked, with what they asked for and what was suggested."""
    form = PickForm()
    if not form.validate_on_submit():
        abort(422, "The pick could not be recorded: " + "; ".join(
            f"{name}: {', '.join(errors)}" for name, errors in form.errors.items()))
    game = db.session.get(Game, form.game_id.data)
    if game is None:
        abort(422, "The pick could not be recorded: that game is not in the catalogue.")
    if not game.active:
        abort(422, f"The pick could not be recorded: {game.name} is not offered any more "
                   "(inactive in the catalogue).")
    db.session.add(GamePick(
        created_by=current_user.username, budget=form.budget.data,
        gameplay=names(form.gameplay.data), suggested=names(form.suggested.data),
        game_id=game.id, game_name=game.name, model_version=form.model_version.data or None))
    db.session.commit()
    if not wants_fragment():
        flash(f"Recorded: they picked {game.name}.", "success")
        return redirect(url_for("tavern.index", budget=form.budget.data), code=303)
    response = page(SuggestForm(request.form), block="picks", picked=game.name)
    return trigger(response, "picks-changed")
