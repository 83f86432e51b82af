"""Clients: the list, a new client, and one client's page with what they received before."""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError
from wtforms import StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from webapp.extensions import db
from webapp.fields import posted_version
from webapp.gifts import bp
from webapp.gifts.models import Client, Gift, name_key
from webapp.htmx import render_page_or_block, wants_fragment


class ClientForm(FlaskForm):
    """A client's details."""

    name = StringField("Name", validators=[InputRequired("Give the client's name."),
                                           Length(max=200)])
    industry = StringField("Industry", validators=[Optional(), Length(max=80)],
                           description="e.g. tech, finance, healthcare: the gift model uses it.")
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=5000)])


def client_or_404(client_id: int) -> Client:
    """The client, or a 404 page."""
    client = db.session.get(Client, client_id)
    if client is None:
        abort(404, "There is no such client.")
    return client


def save_client(client: Client, form: ClientForm) -> bool:
    """Apply the form to ``client``; False (with the error on the name) when the name is taken.

    Raises StaleDataError when someone else saved ``client`` since it was read (optimistic lock).
    """
    name = " ".join(form.name.data.split())
    client.name, client.name_key = name, name_key(name)
    client.industry = (form.industry.data or "").strip().lower()
    client.notes = form.notes.data or ""
    db.session.add(client)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        form.name.errors = [*form.name.errors, f"There is already a client called “{name}”."]
        return False
    return True


@bp.route("/clients")
def clients():
    """Every client with their number of gifts, and a form for a new one."""
    return clients_page(ClientForm(formdata=None))


def clients_page(form: ClientForm, status: int = 200):
    """The clients page (or its form block for htmx)."""
    counts = (select(Client, func.count(Gift.id)).outerjoin(Gift, Gift.client_id == Client.id)
              .group_by(Client.id).order_by(Client.name_key))
    rows = db.session.execute(counts).all()
    return render_page_or_block("gifts/clients.html", "client_form", status=status, form=form,
                                rows=rows)


@bp.route("/clients", methods=["POST"])
def client_create():
    """Add a client; errors come back in the form (422)."""
    form = ClientForm()
    if form.validate_on_submit():
        client = Client()
        if save_client(client, form):
            flash(f"Client “{client.name}” added.", "success")
            target = url_for("gifts.client", client_id=client.id)
            response = redirect(target, code=303)
            if wants_fragment():
                response.headers["HX-Redirect"] = target
            return response
    return clients_page(form, status=422)


@bp.route("/clients/<int:client_id>")
def client(client_id: int):
    """A client's details and the gifts they received, newest first."""
    found = client_or_404(client_id)
    return client_page(found, ClientForm(obj=found, formdata=None))


def client_page(found: Client, form: ClientForm, status: int = 200, **extra):
    """One client's page (or its details block for htmx)."""
    gifts = db.session.scalars(select(Gift).where(Gift.client_id == found.id)
                               .options(selectinload(Gift.lines))
                               .order_by(Gift.gift_date.desc(), Gift.id.desc())).all()
    return render_page_or_block("gifts/client.html", "client_details", status=status,
                                client=found, form=form, gifts=gifts, **extra)


def render_conflict(found: Client, form: ClientForm):
    """409: someone saved this client meanwhile. The form keeps what was typed here (nothing is
    lost) beside their version, and now carries their version number, so Save mine overwrites
    knowingly; Reload theirs takes theirs."""
    theirs = {"name": found.name, "industry": found.industry, "notes": found.notes}
    return client_page(found, form, status=409, theirs=theirs)


@bp.route("/clients/<int:client_id>", methods=["POST"])
def client_update(client_id: int):
    """Save a client's details; errors come back in the form (422), edit conflicts with 409.

    Optimistic locking: the form carries the version it was loaded with. A missing or garbled
    version cannot prove the editor saw the latest details, so it is treated as a conflict.
    """
    found = client_or_404(client_id)
    form = ClientForm()
    valid = form.validate_on_submit()
    if posted_version() != found.version:
        return render_conflict(found, form)
    try:
        saved = valid and save_client(found, form)
    except StaleDataError:
        # Saved by someone else between our read and our UPDATE: version_id_col caught it.
        db.session.rollback()
        return render_conflict(client_or_404(client_id), form)
    if saved:
        if not wants_fragment():
            flash("Saved.", "success")
            return redirect(url_for("gifts.client", client_id=found.id), code=303)
        return client_page(found, form)
    db.session.rollback()
    return client_page(found, form, status=422)

