"""Pizzeria imports: upload, watch the job, review the preview, apply, download the rejects.

One page (``pizzeria/import.html``): the two upload forms, the card of one batch (polling itself
while the job reads the files) and the recent batches. Without JavaScript every form posts and
redirects (303) to the batch's page.
"""

from __future__ import annotations

import logging
import sys

from flask import Response, abort, current_app, flash, redirect, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired, FileSize
from jinja2_fragments.flask import render_block
from wtforms import StringField
from wtforms.validators import AnyOf, InputRequired

from webapp import jobs
from webapp.csv_import import text_upload
from webapp.extensions import htmx
from webapp.htmx import render_page_or_block, trigger, wants_fragment
from webapp.pizzeria import bp
from webapp.pizzeria.import_models import ImportBatch, get_batch, recent_batches
from webapp.pizzeria.imports import (
    FIELD_LABELS,
    MAX_FILE_BYTES,
    BatchNotReady,
    PreviewOutdated,
    apply_batch,
    start_import,
    sync_with_job,
)
from webapp.pizzeria.models import pizzeria_settings

log = logging.getLogger(__name__)

TEMPLATE = "pizzeria/import.html"
EXTENSIONS = ("csv", "txt")
MEGABYTES = MAX_FILE_BYTES // (1024 * 1024)
#: The event that makes the recent-imports list reload itself.
CHANGED = "imports-changed"


def file_validators(required: bool) -> list:
    """Validators of one upload: present (if ``required``), .csv/.txt, text (not an image,
    workbook or program), not empty, not too big."""
    return [
        *([FileRequired("Choose a file to upload.")] if required else []),
        FileAllowed(EXTENSIONS, "Only .csv and .txt files can be imported."),
        text_upload,
        FileSize(max_size=sys.maxsize, min_size=1, message="The file is empty."),
        FileSize(max_size=MAX_FILE_BYTES,
                 message=f"The file is larger than {MEGABYTES} MB; split it into smaller files."),
    ]


class NightlyImportForm(FlaskForm):
    """One CSV of nights."""

    nightly = FileField("Nightly CSV", validators=file_validators(required=True))


class ExportsImportForm(FlaskForm):
    """The restaurant's raw exports: reservations and/or point of sale."""

    reservations = FileField("Reservations export", validators=file_validators(required=False))
    pos = FileField("Point-of-sale export", validators=file_validators(required=False))

    def validate(self, extra_validators=None) -> bool:
        """Each file must be valid, and at least one must be given."""
        if not super().validate(extra_validators):
            return False
        if self.reservations.data is None and self.pos.data is None:
            self.form_errors.append(
                "Choose a reservations export, a point-of-sale export, or both.")
            return False
        return True


class ApplyForm(FlaskForm):
    """Apply a preview, keeping or overwriting the stored values of conflicting nights."""

    #: The two submit buttons send "keep" or "overwrite".
    conflicts = StringField(validators=[
        InputRequired("Choose what to do with conflicts."),
        AnyOf(("keep", "overwrite"), message="Choose to keep or to overwrite conflicts."),
    ])


UPLOAD_FORMS = {"nightly": NightlyImportForm, "exports": ExportsImportForm}


def uploads(form: FlaskForm) -> list[tuple[str, str, bytes]]:
    """``(role, filename, bytes)`` for each file of a valid upload form."""
    return [(field.name, field.data.filename, field.data.read())
            for field in form if isinstance(field, FileField) and field.data is not None]


def card_context(batch: ImportBatch, notice: str | None = None, notice_kind: str = "info",
                 apply_form: ApplyForm | None = None) -> dict:
    """Everything the batch card shows; a batch whose job died is marked failed first."""
    if batch.status in ("uploaded", "parsing"):
        jobs.reap_stale_jobs(current_app.config["JOB_STALE_SECONDS"])
        sync_with_job(batch)
    return {
        "batch": batch,
        "job": jobs.get_job(batch.job_id) if batch.job_id else None,
        "polling": batch.status in ("uploaded", "parsing"),
        "notice": notice, "notice_kind": notice_kind,
        "apply_form": apply_form or ApplyForm(formdata=None),
    }


def page_context(block: str, batch: ImportBatch | None = None, card: dict | None = None,
                 nightly: FlaskForm | None = None, exports: FlaskForm | None = None) -> dict:
    """The page's context; a fragment skips the queries that only other blocks need."""
    whole = not wants_fragment()
    return {
        "nightly_form": nightly or NightlyImportForm(formdata=None),
        "exports_form": exports or ExportsImportForm(formdata=None),
        "card": card_context(batch, **(card or {})) if batch is not None else None,
        "field_labels": FIELD_LABELS,
        "batches": recent_batches() if whole or block == "import_batches" else [],
        "dough_items": (sorted(pizzeria_settings().dough_item_set)
                        if whole or block == "exports_form" else []),
    }


def fresh_form(mode: str) -> bytes:
    """An empty upload form swapped out of band, so no used file or old error stays behind."""
    block = f"{mode}_form"
    return render_block(TEMPLATE, block, oob=True, **page_context(block)).encode()


def batch_or_404(batch_id: str) -> ImportBatch:
    """The batch, or 404."""
    batch = get_batch(batch_id)
    if batch is None:
        abort(404, "There is no such import.")
    return batch


def render_card(batch: ImportBatch, status: int = 200, **card):
    """The batch card for htmx. A plain form post that worked is redirected (303) to the
    batch page; one that did not gets the whole page with the error status."""
    if not wants_fragment() and status < 400:
        if card.get("notice"):
            flash(card["notice"], card.get("notice_kind", "info"))
        return redirect(url_for("pizzeria.import_batch", batch_id=batch.id), code=303)
    response = render_page_or_block(TEMPLATE, "import_batch", status=status,
                                    **page_context("import_batch", batch, card=card))
    return trigger(response, CHANGED)


@bp.route("/import")
def import_page():
    """The upload forms and the recent imports (the list alone for htmx)."""
    return render_page_or_block(TEMPLATE, "import_batches", **page_context("import_batches"))


@bp.route("/import", methods=["POST"])
def import_start():
    """Store the upload and start reading it in the background (422 with the form if invalid)."""
    mode = request.form.get("mode") if request.form.get("mode") in UPLOAD_FORMS else "nightly"
    form = UPLOAD_FORMS[mode]()
    if not form.validate():
        block = f"{mode}_form"
        response = render_page_or_block(TEMPLATE, block, status=422,
                                        **page_context(block, **{mode: form}))
        if wants_fragment():  # the form posts into the card slot; errors belong on the form
            response.headers["HX-Retarget"] = f"#{mode}-form"
            response.headers["HX-Reswap"] = "outerHTML"
        return response
    batch = start_import(mode, uploads(form), current_user.username)
    failed = batch.status == "failed"  # the job queue was unavailable; the card says why
    response = render_card(batch, status=503 if failed else 202)
    if wants_fragment():
        response.headers["HX-Push-Url"] = url_for("pizzeria.import_batch", batch_id=batch.id)
        response.set_data(response.get_data() + fresh_form(mode))
    return response


@bp.route("/import/<batch_id>")
def import_batch(batch_id: str):
    """One import: progress while it is read, then its preview or outcome (polled by htmx)."""
    batch = batch_or_404(batch_id)
    context = page_context("import_batch", batch)
    response = render_page_or_block(TEMPLATE, "import_batch", **context)
    if htmx.trigger == "import-batch" and not context["card"]["polling"]:
        trigger(response, CHANGED)  # the last poll: the list shows the new status too
    return response


@bp.route("/import/<batch_id>/apply", methods=["POST"])
def import_apply(batch_id: str):
    """Apply a previewed import, keeping or overwriting conflicting values."""
    batch = batch_or_404(batch_id)
    form = ApplyForm()
    if not form.validate():
        return render_card(batch, status=422, apply_form=form)
    try:
        result = apply_batch(batch, form.conflicts.data == "overwrite", current_user.username)
    except (BatchNotReady, PreviewOutdated) as error:
        return render_card(batch, status=409, notice=str(error), notice_kind="error")
    log.info("Import %s applied by %s: %s", batch.id, current_user.username, result.summary())
    return render_card(batch)  # the card shows what was written


@bp.route("/import/<batch_id>/report.csv")
def import_report(batch_id: str):
    """The bad rows of an import as CSV: file, line, reason, raw row."""
    batch = batch_or_404(batch_id)
    if batch.report is None:
        abort(404, "This import has no report yet: its files have not been read.")
    # The BOM tells spreadsheet programs that the report is UTF-8.
    return Response("\ufeff" + batch.report, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="pizzeria-import-{batch.id[:8]}-rejects.csv"'
    })
