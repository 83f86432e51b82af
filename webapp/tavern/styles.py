"""The gameplay-style vocabulary: list with usage counts, add, rename in place, detach, delete.

A style used by games cannot be deleted (422 with the count); "Detach" first removes it from
those games. Names are trimmed and unique whatever their case.
"""

from __future__ import annotations

from flask import abort, flash, redirect, url_for

from webapp.extensions import db
from webapp.htmx import render_page_or_block, trigger, wants_fragment
from webapp.tavern import bp, service
from webapp.tavern.forms import StyleForm
from webapp.tavern.models import GameplayStyle

TEMPLATE = "tavern/styles.html"
#: A style was added: the list refreshes.
CHANGED = "styles-changed"


def page_context(**extra) -> dict:
    """Everything the whole page shows; ``extra`` overrides (a form with errors, an open row)."""
    return {"styles": service.style_usage(), "form": StyleForm(formdata=None), **extra}


def style_or_404(style_id: int) -> GameplayStyle:
    """The style, or 404."""
    style = db.session.get(GameplayStyle, style_id)
    if style is None:
        abort(404, "There is no such style: it may have been deleted.")
    return style


def render_row(style: GameplayStyle, block: str = "style_row", status: int = 200, **extra):
    """One row of the vocabulary for htmx; the whole page, with that row, without JS."""
    page = {} if wants_fragment() else page_context()
    page.update(style=style, used=service.style_use_count(style), **extra)
    return render_page_or_block(TEMPLATE, block, status=status, **page)


def back_to_list(message: str, category: str = "success"):
    """The no-JS answer to a form that worked."""
    flash(message, category)
    return redirect(url_for("tavern.styles"), code=303)


@bp.route("/styles")
def styles():
    """The vocabulary, with how many games use each style."""
    return render_page_or_block(TEMPLATE, "style_list", **page_context())


@bp.route("/styles", methods=["POST"])
def style_create():
    """Add a style (422 when the name is empty, too long or taken in any case)."""
    form = StyleForm()
    if form.validate_on_submit():
        try:
            style = service.save_style(GameplayStyle(), form.name.data)
        except service.DuplicateName as error:
            form.name.errors.append(str(error))
        else:
            if not wants_fragment():
                return back_to_list(f"Style “{style.name}” added.")
            return trigger(render_page_or_block(TEMPLATE, "style_form", status=201,
                                                form=StyleForm(formdata=None), saved_style=style),
                           CHANGED)
    context = {"form": form} if wants_fragment() else page_context(form=form)
    return render_page_or_block(TEMPLATE, "style_form", status=422, **context)


@bp.route("/styles/<int:style_id>")
def style_row(style_id: int):
    """A row in view mode (what Escape and Cancel go back to)."""
    return render_row(style_or_404(style_id))


@bp.route("/styles/<int:style_id>/edit")
def style_edit(style_id: int):
    """A row in rename mode."""
    style = style_or_404(style_id)
    return render_row(style, "style_edit_row", editing_id=style.id,
                      edit_form=StyleForm(formdata=None, obj=style))


@bp.route("/styles/<int:style_id>", methods=["POST"])
def style_rename(style_id: int):
    """Rename a style; errors come back in the row with 422."""
    style = style_or_404(style_id)
    form = StyleForm()
    if form.validate_on_submit():
        try:
            service.save_style(style, form.name.data)
        except service.DuplicateName as error:
            form.name.errors.append(str(error))
        else:
            if not wants_fragment():
                return back_to_list(f"Style renamed to “{style.name}”.")
            return render_row(style)
    return render_row(style, "style_edit_row", status=422, editing_id=style.id, edit_form=form)


@bp.route("/styles/<int:style_id>/detach", methods=["POST"])
def style_detach(style_id: int):
    """Remove a style from every game that has it (so that it can then be deleted)."""
    style = style_or_404(style_id)
    count = service.detach_style(style)
    games = f"{count} game{'' if count == 1 else 's'}"
    if not wants_fragment():
        return back_to_list(f"“{style.name}” removed from {games}.", "info")
    return render_row(style, notice=f"Removed from {games}.")


@bp.route("/styles/<int:style_id>/delete", methods=["POST"])
def style_delete(style_id: int):
    """Delete an unused style; a used one stays, with the reason in its row (422)."""
    style = style_or_404(style_id)
    try:
        service.delete_style(style)
    except service.StyleInUse as error:
        if not wants_fragment():
            return render_page_or_block(TEMPLATE, "style_list", status=422,
                                        **page_context(error_id=style.id, error=str(error)))
        return render_row(style, status=422, error=str(error))
    if not wants_fragment():
        return back_to_list(f"Style “{style.name}” deleted.", "info")
    return render_page_or_block(TEMPLATE, "deleted_style_row", style_id=style_id, name=style.name)
