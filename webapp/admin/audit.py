"""Admin audit page: who changed labels, rules, models, users and tokens, newest first.

Filters (actor, action, subject type) are a GET form, so a filtered page is a link; a value the
log does not know is ignored, as on the items table.
"""

from __future__ import annotations

from flask import current_app, request
from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from webapp import audit
from webapp.admin import bp
from webapp.extensions import db
from webapp.htmx import render_page_or_block

TEMPLATE = "admin/audit.html"
FILTERS = ("actor", "action", "subject")


class AuditFilterForm(FlaskForm):
    """The log's filters (GET, so no CSRF token). Unknown values are ignored."""

    class Meta:
        csrf = False

    actor = SelectField("Who", choices=[], validate_choice=False)
    action = SelectField("Action", validate_choice=False, choices=[
        SelectChoice("", "Any action"),
        *(SelectChoice(action, f"{action}: {text}") for action, text in audit.ACTIONS.items())])
    subject = SelectField("Subject", validate_choice=False, choices=[
        SelectChoice("", "Any subject"), *(SelectChoice(kind) for kind in audit.SUBJECT_TYPES)])


def filter_form() -> AuditFilterForm:
    """The filters from the query string, the actors being those in the log."""
    form = AuditFilterForm(request.args)
    form.actor.choices = [SelectChoice("", "Anyone"),
                          *(SelectChoice(name) for name in audit.actor_names())]
    return form


def active_filters(form: AuditFilterForm) -> dict[str, str]:
    """The filters in use that name something the log knows (for the query and the links)."""
    known = {"actor": {choice.value for choice in form.actor.choices},
             "action": set(audit.ACTIONS), "subject": set(audit.SUBJECT_TYPES)}
    return {name: form[name].data for name in FILTERS
            if form[name].data and form[name].data in known[name]}


@bp.route("/audit")
def audit_log():
    """The audit log, newest first, a page at a time, filtered by actor, action and subject."""
    form = filter_form()
    filters = active_filters(form)
    query = audit.events_query(actor=filters.get("actor"), action=filters.get("action"),
                               subject_type=filters.get("subject"))
    events = db.paginate(query, page=request.args.get("page", 1, type=int),
                         per_page=current_app.config["PAGE_SIZE"], error_out=False)
    return render_page_or_block(TEMPLATE, "audit_results", filters=form, events=events,
                                filter_args=filters)
