"""Admin Models page: retrain in the background, watch progress, compare, activate, roll back."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, url_for
from flask_login import current_user

from webapp import jobs, registry
from webapp.admin import bp
from webapp.htmx import render_page_or_block, wants_fragment
from webapp.ml_bridge import KINDS, activated, get_spec

TEMPLATE = "admin/models.html"
RETRAIN = "retrain"


def dedupe_key(kind: str) -> str:
    """One retrain per model kind at a time."""
    return f"{RETRAIN}:{kind}"


def card_context(kind: str, form=None, notice: str | None = None) -> dict:
    """Everything one model card shows."""
    spec = get_spec(kind)
    return {
        "spec": spec,
        "active": registry.active_version(kind),
        "versions": registry.versions(kind),
        "activations": registry.activations(kind),
        "can_rollback": registry.previous_version(kind) is not None,
        "job": jobs.latest_job(RETRAIN, kind),
        "failures": jobs.recent_failures(RETRAIN, kind),
        "form": form or (spec.param_form(formdata=None) if spec.param_form else None),
        "notice": notice,
    }


def render_card(kind: str, status: int = 200, **extra):
    """The card of ``kind`` for htmx; a plain form post is redirected to the page instead."""
    if not wants_fragment():
        if extra.get("notice"):
            flash(extra["notice"], "error" if status >= 400 else "info")
        return redirect(url_for("admin.models"), code=303)
    return render_page_or_block(TEMPLATE, "model_card", status=status,
                                card=card_context(kind, **extra))


def known_kind(kind: str) -> str:
    """404 for a kind that does not exist."""
    if kind not in KINDS:
        abort(404, f"There is no model kind {kind!r}.")
    return kind


@bp.route("/models")
def models():
    """One card per model kind."""
    jobs.reap_stale_jobs(current_app.config["JOB_STALE_SECONDS"])
    return render_page_or_block(TEMPLATE, "cards", cards=[card_context(kind) for kind in KINDS])


@bp.route("/models/<kind>")
def model_card(kind: str):
    """One card: polled every second while a retrain runs.

    It reaps too, so a card watched while its worker dies turns "failed" without a reload.
    """
    kind = known_kind(kind)
    jobs.reap_stale_jobs(current_app.config["JOB_STALE_SECONDS"])
    return render_card(kind)


@bp.route("/models/<kind>/retrain", methods=["POST"])
def retrain(kind: str):
    """Start a retrain, or show the one already running."""
    spec = get_spec(known_kind(kind))
    form = spec.param_form() if spec.param_form else None
    if form is not None and not form.validate():
        return render_card(kind, status=422, form=form)
    params = {key: value for key, value in (form.data if form else {}).items()
              if key != "csrf_token"}
    try:
        job, created = jobs.enqueue(RETRAIN, {"kind": kind, "trained_by": current_user.username,
                                              **params}, dedupe_key=dedupe_key(kind),
                                    created_by=current_user.username, subject=kind)
    except jobs.QueueUnavailable as error:
        return render_card(kind, status=503, notice=str(error))
    notice = None if created else "A retrain is already running; showing it."
    return render_card(kind, status=202 if created else 200, notice=notice)


@bp.route("/models/<kind>/versions/<version>/activate", methods=["POST"])
def activate(kind: str, version: str):
    """Make ``version`` active (also the way to roll forward or back to any version)."""
    known_kind(kind)
    try:
        registry.activate(kind, version, current_user.username, reason="activated by hand")
    except registry.RegistryError as error:
        return render_card(kind, status=422, notice=str(error))
    activated(kind, version)
    return render_card(kind, notice=f"Version {version} is now active.")


@bp.route("/models/<kind>/rollback", methods=["POST"])
def rollback(kind: str):
    """Re-activate the previously active version."""
    known_kind(kind)
    try:
        row = registry.rollback(kind, current_user.username)
    except registry.RegistryError as error:
        return render_card(kind, status=422, notice=str(error))
    activated(kind, row.version)
    return render_card(kind, notice=f"Rolled back to {row.version}.")

