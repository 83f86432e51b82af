"""Nights, edited inline: list with filters, add, edit a row in place, delete with undo."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, request, url_for
from sqlalchemy.orm.exc import StaleDataError
from wtforms.fields.choices import SelectChoice

from webapp.extensions import db
from webapp.fields import posted_version
from webapp.htmx import render_page_or_block, trigger, wants_fragment
from webapp.pizzeria import bp, service
from webapp.pizzeria.forms import ExcludedWeekdaysForm, NightFilterForm, NightForm
from webapp.pizzeria.models import Night, pizzeria_settings

TEMPLATE = "pizzeria/nights.html"
CHANGED = "nights-changed"  # a night was added: the table and the summary refresh
#: A row changed in place (edit, delete, undo): only the summary refreshes, so the table keeps
#: the swapped row, such as the Undo after a delete.
COUNTS_CHANGED = "night-counts-changed"
#: The excluded weekdays changed: every row's training status may differ, so the table refreshes.
STATUSES_CHANGED = "night-statuses-changed"
#: The weekday filter's values (Monday=0).
WEEKDAY_VALUES = frozenset(str(number) for number in range(len(service.WEEKDAYS)))
#: A delete of a night that changed since its row was loaded (nothing is deleted).
STALE_DELETE = ("This night was changed by someone else since you loaded it, so it was not "
                "deleted: reload to see it as it is now, then delete it again if you still "
                "want to.")


def filter_form() -> NightFilterForm:
    """The month/weekday filter, with its choices."""
    form = NightFilterForm(request.args)
    form.month.choices = [SelectChoice("", "All months")] + [
        SelectChoice(month) for month in service.months_with_nights()]
    form.weekday.choices = [SelectChoice("", "All weekdays")] + [
        SelectChoice(str(number), name) for number, name in enumerate(service.WEEKDAYS)]
    return form


def page_context(form: NightForm | None = None, **extra) -> dict:
    """Everything the nights page shows."""
    filters = filter_form()
    # Only the seven choices count: a huge number overflowed the query, and "²" is a digit to
    # str.isdigit but not to int().
    weekday = filters.weekday.data
    weekday = int(weekday) if weekday in WEEKDAY_VALUES else None
    try:
        query = service.nights_query(filters.month.data or None, weekday)
    except ValueError:
        query = service.nights_query(None, weekday)
    page = request.args.get("page", 1, type=int)
    settings = pizzeria_settings()
    weekdays_form = ExcludedWeekdaysForm(weekdays=sorted(settings.weekday_set))
    weekdays_form.weekdays.choices = [SelectChoice(number, name)
                                      for number, name in enumerate(service.WEEKDAYS)]
    return {
        "nights": db.paginate(query, page=page, per_page=current_app.config["PAGE_SIZE"],
                              error_out=False),
        "filters": filters, "filter_args": {k: v for k, v in request.args.items()
                                            if k in ("month", "weekday") and v},
        "form": form or NightForm(formdata=None), "settings": settings,
        "summary": service.training_summary(settings), "weekdays_form": weekdays_form,
        "status_of": lambda night: service.training_status(night, settings), **extra,
    }


def render_row(night: Night, block: str = "night_row", status: int = 200, **extra):
    """One table row (view or edit mode) for htmx; the whole page, with that row, without JS."""
    settings = pizzeria_settings()
    page = {} if wants_fragment() else page_context()
    page.update(night=night, status_of=lambda n: service.training_status(n, settings), **extra)
    return render_page_or_block(TEMPLATE, block, status=status, **page)


def render_form(form: NightForm, status: int, **extra):
    """The add-night form (e.g. with errors) for htmx; the whole page around it without JS."""
    page = {} if wants_fragment() else page_context(form=form)
    return render_page_or_block(TEMPLATE, "night_form", status=status,
                                **{**page, "form": form, **extra})


@bp.route("/nights")
def nights():
    """All nights, newest first, filtered by month and weekday, paginated."""
    return render_page_or_block(TEMPLATE, "nights_table", **page_context())


@bp.route("/nights", methods=["POST"])
def nights_create():
    """Add a night (also used by Undo after a delete)."""
    form = NightForm()
    if form.validate_on_submit():
        try:
            night = service.save_night(Night(), form.data)
        except service.DuplicateDate as error:
            form.date.errors.append(str(error))
        else:
            if not wants_fragment():
                flash(f"Night {night.date:%Y-%m-%d} saved.", "success")
                return redirect(url_for("pizzeria.nights"), code=303)
            response = render_form(NightForm(formdata=None), 201, saved=night)
            return trigger(response, CHANGED)
    return render_form(form, 422)


@bp.route("/nights/<int:night_id>")
def night_row(night_id: int):
    """A row in view mode (also what Escape goes back to)."""
    return render_row(db.get_or_404(Night, night_id))


@bp.route("/nights/<int:night_id>/edit")
def night_edit(night_id: int):
    """A row in edit mode."""
    night = db.get_or_404(Night, night_id)
    return render_row(night, "night_edit_row", editing_id=night.id,
                      edit_form=NightForm(obj=night, formdata=None))


def render_conflict(night: Night, form: NightForm):
    """409: someone saved this night meanwhile; show their values beside the ones typed here.

    The row stays in edit mode with the typed values in the inputs (nothing is lost) and the
    current version in the hidden field, so Save now deliberately overwrites what they saw.
    """
    differs = {name for name in service.NIGHT_FIELDS
               if form[name].errors or form[name].data != getattr(night, name)}
    return render_row(night, "night_edit_row", status=409, editing_id=night.id,
                      edit_form=form, conflict=True, differs=differs)


@bp.route("/nights/<int:night_id>", methods=["POST"])
def night_update(night_id: int):
    """Save an edited row; errors come back in the row with 422, edit conflicts with 409.

    Optimistic locking: the form carries the version it was loaded with. A missing or garbled
    version cannot prove the editor saw the latest values, so it is treated as a conflict.
    """
    night = db.get_or_404(Night, night_id)
    form = NightForm()
    valid = form.validate_on_submit()
    if posted_version() != night.version:
        return render_conflict(night, form)
    if valid:
        try:
            service.save_night(night, form.data)
        except service.DuplicateDate as error:
            form.date.errors.append(str(error))
        except StaleDataError:
            # Saved by someone else between our read and our UPDATE: version_id_col caught it.
            db.session.rollback()
            return render_conflict(db.get_or_404(Night, night_id), form)
        else:
            if not wants_fragment():
                return redirect(url_for("pizzeria.nights"), code=303)
            return trigger(render_row(night), COUNTS_CHANGED)
    return render_row(night, "night_edit_row", status=422, editing_id=night.id, edit_form=form)


def refuse_stale_delete():
    """409, nothing deleted: the night changed since its row was loaded.

    With htmx the message goes to the flash region; without JavaScript the page shows the
    night as it is now, whose Delete then carries the current version.
    """
    if wants_fragment():
        abort(409, STALE_DELETE)
    flash(STALE_DELETE, "error")
    return render_page_or_block(TEMPLATE, "nights_table", status=409, **page_context())


@bp.route("/nights/<int:night_id>/delete", methods=["POST"])
def night_delete(night_id: int):
    """Delete a night; the row turns into an Undo that can bring it back.

    Optimistic locking, as for edits: the Delete form carries the version its row showed, and a
    night saved (or imported over) since is not deleted (409). A missing or garbled version
    cannot prove what was seen, so it is refused too.
    """
    night = db.get_or_404(Night, night_id)
    if posted_version() != night.version:
        return refuse_stale_delete()
    values = service.night_values(night)
    db.session.delete(night)
    try:
        db.session.commit()  # DELETE … WHERE id = ? AND version = ?
    except StaleDataError:
        # Saved by someone else between our read and our DELETE: version_id_col caught it.
        db.session.rollback()
        return refuse_stale_delete()
    if not wants_fragment():
        flash(f"Night {values['date']:%Y-%m-%d} deleted.", "info")
        return redirect(url_for("pizzeria.nights"), code=303)
    undo = NightForm(formdata=None, data=values)
    return trigger(render_page_or_block(TEMPLATE, "deleted_row", night_id=night_id,
                                        values=values, undo=undo), COUNTS_CHANGED)


@bp.route("/nights/restore", methods=["POST"])
def night_restore():
    """Undo a delete: re-create the night from the values the Undo form carries."""
    form = NightForm()
    if not form.validate_on_submit():
        return render_form(form, 422)
    try:
        night = service.save_night(Night(), form.data)
    except service.DuplicateDate as error:
        return render_form(form, 422, notice=str(error))
    return trigger(render_row(night), COUNTS_CHANGED)


@bp.route("/settings/weekdays", methods=["POST"])
def excluded_weekdays():
    """Choose which weekdays are left out of training."""
    form = ExcludedWeekdaysForm()
    form.weekdays.choices = [SelectChoice(number, name)
                             for number, name in enumerate(service.WEEKDAYS)]
    if not form.validate_on_submit():
        return render_page_or_block(TEMPLATE, "training_summary", status=422,
                                    **page_context())
    # Nothing ticked arrives as None: every weekday trains.
    service.update_excluded_weekdays(pizzeria_settings(), form.weekdays.data or [])
    if not wants_fragment():
        return redirect(url_for("pizzeria.nights"), code=303)
    return trigger(render_page_or_block(TEMPLATE, "training_summary", **page_context(),
                                        saved_weekdays=True), STATUSES_CHANGED)


@bp.route("/nights/summary")
def nights_summary():
    """The in/out counts (refreshed after every change)."""
    return render_page_or_block(TEMPLATE, "training_summary", **page_context())
