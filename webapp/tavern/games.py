"""The game catalogue: search and filters, add, edit a row in place, (de)activate, delete with
undo, covers, and the budget buckets.

One page (``tavern/games.html``). With htmx each action answers with the fragment it changes
(a row, the add form, the bucket card); without JavaScript every form posts and redirects (303)
back to the catalogue, or shows the whole page with the errors (422).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from flask import abort, current_app, flash, redirect, request, send_file, url_for
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError
from wtforms.fields.choices import SelectChoice

from webapp.auth.models import utcnow
from webapp.extensions import db
from webapp.fields import posted_version
from webapp.htmx import render_page_or_block, trigger, wants_fragment
from webapp.tavern import bp, covers, service
from webapp.tavern.forms import (
    ActiveForm,
    BudgetForm,
    CatalogueFilterForm,
    CoverForm,
    GameForm,
    RestoreGameForm,
)
from webapp.tavern.models import (
    GAME_NAME_MAX,
    UNKNOWN_CONSOLE,
    Game,
    GameplayStyle,
    tavern_settings,
)

TEMPLATE = "tavern/games.html"
#: A game was added: the results and the bucket counts refresh.
CHANGED = "games-changed"
#: A row changed in place (edit, activate, delete, undo): only the counts refresh, so the table
#: keeps the swapped row (such as the Undo after a delete).
COUNTS_CHANGED = "game-counts-changed"
#: The thresholds changed: every row's bucket may differ, so the results refresh.
BUDGET_CHANGED = "budget-changed"
#: The query-string arguments that describe the listing (kept on links for the no-JS pages).
LIST_ARGS = ("q", "style", "budget", "status", "page")
#: Covers are cached by the browser: a new cover gets a new name, so a name never changes.
COVER_MAX_AGE = 7 * 24 * 3600
#: A one-click change (activate, cover) that lost a race with another save of the same game.
RACED = "Someone else saved this game at the same moment, so nothing was changed. Try again."


def style_choices() -> list[SelectChoice]:
    """The vocabulary as choices (value: the style's id), by name."""
    query = select(GameplayStyle.id, GameplayStyle.name).order_by(GameplayStyle.name_key)
    return [SelectChoice(style_id, name) for style_id, name in db.session.execute(query)]


def with_style_choices(form):
    """``form`` with its styles' choices set (a form with an unknown style id is invalid)."""
    form.styles.choices = style_choices()
    return form


def edit_form(game: Game) -> GameForm:
    """The inline-edit form, filled with the game's stored values."""
    return with_style_choices(GameForm(formdata=None, data={
        "name": game.name, "console": game.console, "price_per_hour": game.price_per_hour,
        "styles": [style.id for style in game.styles]}))


def list_args() -> dict[str, str]:
    """The listing's arguments of this request (search, filters, page)."""
    return {name: value for name in LIST_ARGS if (value := request.args.get(name, "").strip())}


def results_context() -> dict:
    """The filtered, paginated games and what their rows need."""
    filters = CatalogueFilterForm(request.args)
    filters.style.choices = [SelectChoice("", "Any style")] + [
        SelectChoice(choice.label) for choice in style_choices()]
    settings = tavern_settings()
    style = service.style_by_name(filters.style.data) if filters.style.data else None
    query = service.games_query((filters.q.data or "")[:GAME_NAME_MAX], style,
                                filters.budget.data, filters.status.data, settings)
    return {
        "games": db.paginate(query, page=request.args.get("page", 1, type=int),
                             per_page=current_app.config["PAGE_SIZE"], error_out=False),
        "filters": filters, "filter_args": {k: v for k, v in list_args().items() if k != "page"},
        "list_args": list_args(), "bucket_of": partial(service.bucket_of, settings=settings),
    }


def budget_context(form: BudgetForm | None = None, **extra) -> dict:
    """The bucket card: the thresholds' form and how many active games fall in each bucket."""
    settings = tavern_settings()
    return {"budget_form": form or BudgetForm(formdata=None, obj=settings), "settings": settings,
            "bucket_counts": service.bucket_counts(settings), **extra}


def page_context(**extra) -> dict:
    """Everything the whole page shows; ``extra`` overrides (a form with errors, an open row)."""
    return {**results_context(), **budget_context(),
            "form": with_style_choices(GameForm(formdata=None)), **extra}


def render_row(game: Game, block: str = "game_row", status: int = 200, **extra):
    """One row (view or edit mode) for htmx; the whole page, with that row, without JS."""
    page = {"list_args": list_args()} if wants_fragment() else page_context()
    settings = tavern_settings()
    page.update(game=game, bucket_of=partial(service.bucket_of, settings=settings), **extra)
    return render_page_or_block(TEMPLATE, block, status=status, **page)


def render_edit_row(game: Game, status: int = 200, form: GameForm | None = None,
                    cover_form: CoverForm | None = None):
    """The row in edit mode, with errors if any."""
    return render_row(game, "game_edit_row", status=status, editing_id=game.id,
                      edit_form=form or edit_form(game),
                      cover_form=cover_form or CoverForm(formdata=None))


def submitted_values(form: RestoreGameForm) -> dict:
    """An Undo's values as they were sent, so a refused Undo can be tried again."""
    return {"name": request.form.get("name", ""), "console": request.form.get("console", ""),
            "price_per_hour": request.form.get("price_per_hour", ""),
            "style_ids": request.form.getlist("styles"), "active": bool(form.active.data),
            "cover_filename": request.form.get("cover_filename", "")}


def back_to_list(message: str | None = None, category: str = "success"):
    """The no-JS answer to a form that worked: back to the listing the user came from."""
    if message:
        flash(message, category)
    return redirect(url_for("tavern.games", **list_args()), code=303)


def game_or_404(game_id: int) -> Game:
    """The game, or 404."""
    game = db.session.get(Game, game_id)
    if game is None:
        abort(404, "There is no such game: it may have been deleted.")
    return game


@bp.route("/games")
def games():
    """The catalogue: searched, filtered by style, budget and status, paginated."""
    context = results_context() if wants_fragment() else page_context()
    return render_page_or_block(TEMPLATE, "game_results", **context)


@bp.route("/games", methods=["POST"])
def game_create():
    """Add a game (422 with the form when it is invalid or its name is taken)."""
    form = with_style_choices(GameForm())
    if form.validate_on_submit():
        try:
            game = service.save_game(Game(), form.name.data, form.console.data,
                                     form.price_per_hour.data, form.styles.data or [])
        except service.DuplicateName as error:
            form.name.errors.append(str(error))
        else:
            if not wants_fragment():
                return back_to_list(f"“{game.name}” added.")
            fresh = with_style_choices(GameForm(formdata=None))
            return trigger(render_page_or_block(TEMPLATE, "game_form", status=201, form=fresh,
                                                saved_game=game), CHANGED)
    context = {"form": form} if wants_fragment() else page_context(form=form)
    return render_page_or_block(TEMPLATE, "game_form", status=422, **context)


@bp.route("/games/<int:game_id>")
def game_row(game_id: int):
    """A row in view mode (also what Escape and Cancel go back to)."""
    return render_row(game_or_404(game_id))


@bp.route("/games/<int:game_id>/edit")
def game_edit(game_id: int):
    """A row in edit mode."""
    return render_edit_row(game_or_404(game_id))


def their_values(game: Game, form: GameForm) -> dict[str, str]:
    """The stored values of ``game`` that differ from what ``form`` holds, as the row shows them.

    A field with errors always differs: what was typed there cannot be compared.
    """
    stored = {"name": game.name, "console": game.console, "price_per_hour": game.price_per_hour,
              "styles": {style.id for style in game.styles}}
    typed = {"name": service.clean_name(form.name.data),
             "console": service.clean_name(form.console.data) or UNKNOWN_CONSOLE,
             "price_per_hour": form.price_per_hour.data, "styles": set(form.styles.data or ())}
    shown = {"name": game.name, "console": game.console,
             "price_per_hour": f"{game.price_per_hour:.2f}",
             "styles": ", ".join(game.style_names) or "–"}
    return {name: shown[name] for name in stored
            if form[name].errors or typed[name] != stored[name]}


def render_conflict(game: Game, form: GameForm):
    """409: someone saved this game meanwhile; show their values beside the ones typed here.

    The row stays in edit mode with the typed values (nothing is lost) and the current version
    in its Save form, so Save mine now overwrites knowingly; Reload theirs drops the typed values.
    ``form.theirs`` carries the other side to the row macro (the page's blocks pass only the form).
    """
    form.theirs = their_values(game, form)
    return render_edit_row(game, status=409, form=form)


def save_edit(game: Game, form: GameForm) -> None:
    """Save the edit row's values to ``game`` (commits); raises DuplicateName or StaleDataError."""
    # Always an UPDATE of the game's own row, so a change of its styles alone (another table)
    # is checked against, and bumps, the version too.
    game.updated_at = utcnow()
    # One flush, at the commit: an autoflush by save_game's queries would UPDATE (and bump the
    # version) twice.
    with db.session.no_autoflush:
        service.save_game(game, form.name.data, form.console.data, form.price_per_hour.data,
                          form.styles.data or [])


@bp.route("/games/<int:game_id>", methods=["POST"])
def game_update(game_id: int):
    """Save an edited row; errors come back in the row with 422, edit conflicts with 409.

    Optimistic locking: the row carries the version it was loaded with. A missing or garbled
    version cannot prove the editor saw the latest values, so it is treated as a conflict.
    """
    game = game_or_404(game_id)
    form = with_style_choices(GameForm())
    valid = form.validate_on_submit()
    if posted_version() != game.version:
        return render_conflict(game, form)
    if valid:
        try:
            save_edit(game, form)
        except service.DuplicateName as error:
            db.session.rollback()  # drop the pending updated_at: the 422 keeps the stored version
            form.name.errors.append(str(error))
        except StaleDataError:
            # Saved by someone else between our read and our UPDATE: version_id_col caught it.
            db.session.rollback()
            return render_conflict(game_or_404(game_id), form)
        else:
            if not wants_fragment():
                return back_to_list(f"“{game.name}” saved.")
            return trigger(render_row(game), COUNTS_CHANGED)
    return render_edit_row(game, status=422, form=form)


@contextmanager
def refused_if_raced(on_refusal: Callable[[], object] | None = None) -> Iterator[None]:
    """Turn a save that lost a race (StaleDataError: the game changed between this request's
    read and its UPDATE) into a 409 that changes nothing; ``on_refusal`` undoes side effects."""
    try:
        yield
    except StaleDataError:
        db.session.rollback()
        if on_refusal is not None:
            on_refusal()
        abort(409, RACED)


@bp.route("/games/<int:game_id>/active", methods=["POST"])
def game_active(game_id: int):
    """Offer a game again (active=yes) or stop suggesting it (active=no)."""
    game = game_or_404(game_id)
    form = ActiveForm()
    if not form.validate_on_submit():
        abort(422, "Say whether the game is active: yes or no.")
    with refused_if_raced():
        service.set_active(game, form.active.data == "yes")
    if not wants_fragment():
        state = "active" if game.active else "inactive"
        return back_to_list(f"“{game.name}” is {state}.")
    return trigger(render_row(game), COUNTS_CHANGED)


@bp.route("/games/<int:game_id>/delete", methods=["POST"])
def game_delete(game_id: int):
    """Delete a game; the row turns into an Undo that can bring it back, cover included."""
    values = service.delete_game(game_or_404(game_id))
    if not wants_fragment():
        return back_to_list(f"“{values['name']}” deleted.", "info")
    return trigger(render_page_or_block(TEMPLATE, "deleted_row", game_id=game_id, values=values),
                   COUNTS_CHANGED)


@bp.route("/games/<int:game_id>/restore", methods=["POST"])
def game_restore(game_id: int):
    """Undo a delete: re-create the game from the values its Undo form carries."""
    form = with_style_choices(RestoreGameForm())
    notice = None
    if form.validate_on_submit():
        try:
            game = service.restore_game(form.name.data, form.console.data,
                                        form.price_per_hour.data, form.styles.data or [],
                                        form.active.data, form.cover_filename.data or None)
        except service.DuplicateName as error:
            notice = f"{error} Nothing was restored."
        else:
            if not wants_fragment():
                return back_to_list(f"“{game.name}” restored.")
            return trigger(render_row(game), COUNTS_CHANGED)
    notice = notice or "; ".join(error for errors in form.errors.values() for error in errors)
    values = submitted_values(form)
    context = {} if wants_fragment() else page_context()
    return render_page_or_block(TEMPLATE, "deleted_row", status=422, game_id=game_id,
                                values=values, notice=notice, **context)


@bp.route("/games/<int:game_id>/cover", methods=["POST"])
def cover_upload(game_id: int):
    """Give a game a cover (PNG, JPEG or WebP, at most 2 MB); errors show in the row (422)."""
    game = game_or_404(game_id)
    form = CoverForm()
    if not form.validate_on_submit():
        return render_edit_row(game, status=422, cover_form=form)
    name = covers.store_cover(form.cover.data.read())
    with refused_if_raced(partial(covers.discard, name)):
        service.set_cover(game, name)
    if not wants_fragment():
        return back_to_list(f"Cover of “{game.name}” saved.")
    return render_row(game)


@bp.route("/games/<int:game_id>/cover/delete", methods=["POST"])
def cover_remove(game_id: int):
    """Go back to the placeholder (the file waits in the trash for the grace period)."""
    game = game_or_404(game_id)
    with refused_if_raced():
        service.set_cover(game, None)
    if not wants_fragment():
        return back_to_list(f"Cover of “{game.name}” removed.", "info")
    return render_row(game)


@bp.route("/covers/<name>")
def cover(name: str):
    """A game's cover, served as the image type its bytes showed, never sniffed."""
    found = covers.cover_file(name) if service.cover_in_use(name) else None
    if found is None:
        abort(404, "There is no such cover.")
    path, mimetype = found
    response = send_file(path, mimetype=mimetype, max_age=COVER_MAX_AGE, conditional=True)
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Opened on its own, the image gets no rights to run or load anything.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.cache_control.private = True  # behind a login: no shared cache may keep it
    return response


@bp.route("/settings/budget")
def budget_summary():
    """The bucket card (refreshed after every change to the games)."""
    context = budget_context() if wants_fragment() else page_context()
    return render_page_or_block(TEMPLATE, "budget_settings", **context)


@bp.route("/settings/budget", methods=["POST"])
def budget_update():
    """Move the bucket thresholds (422 unless 0 < cheap below < premium from)."""
    form = BudgetForm()
    if not form.validate_on_submit():
        context = budget_context(form) if wants_fragment() else page_context(**budget_context(form))
        return render_page_or_block(TEMPLATE, "budget_settings", status=422, **context)
    service.update_thresholds(tavern_settings(), form.cheap_below.data, form.premium_from.data)
    if not wants_fragment():
        return back_to_list("Budget buckets saved.")
    return trigger(render_page_or_block(TEMPLATE, "budget_settings",
                                        **budget_context(saved_budget=True)), BUDGET_CHANGED)
