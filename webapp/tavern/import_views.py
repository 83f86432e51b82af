"""Catalogue imports: upload a games file, see what it changed, download its bad rows.

The file is read and applied within the request (it is capped at 5 MB and 20,000 rows, which
takes a few seconds at most), so there is no job to watch. One page (``tavern/import.html``):
the upload form, the result of one import and the recent imports. Without JavaScript the form
posts and redirects (303) to the import's own page.
"""

from __future__ import annotations

import logging

from flask import Response, abort, redirect, url_for
from flask_login import current_user
from jinja2_fragments.flask import render_block

from webapp.extensions import db
from webapp.htmx import render_page_or_block, trigger, wants_fragment
from webapp.tavern import bp
from webapp.tavern.forms import MAX_IMPORT_BYTES, ImportForm
from webapp.tavern.games import CHANGED as GAMES_CHANGED
from webapp.tavern.imports import (
    MAX_ROWS,
    CatalogueFileError,
    ImportConflict,
    import_catalogue,
)
from webapp.tavern.models import CatalogueImport, recent_imports

log = logging.getLogger(__name__)

TEMPLATE = "tavern/import.html"
#: The event that makes the recent-imports list reload itself.
CHANGED = "tavern-imports-changed"


def page_context(block: str, record: CatalogueImport | None = None,
                 form: ImportForm | None = None, **extra) -> dict:
    """The page's context; a fragment skips the query that only the list needs."""
    whole = not wants_fragment()
    return {
        "form": form or ImportForm(formdata=None), "record": record,
        "max_megabytes": MAX_IMPORT_BYTES // 1024 // 1024,
        "max_rows": MAX_ROWS,
        "imports": recent_imports() if whole or block == "import_history" else [], **extra,
    }


def record_or_404(import_id: str) -> CatalogueImport:
    """The import, or 404."""
    record = db.session.get(CatalogueImport, import_id)
    if record is None:
        abort(404, "There is no such import.")
    return record


def form_error(form: ImportForm, message: str | None = None):
    """The form with its errors (422); htmx puts it back in the form's place."""
    if message:
        form.games.errors = [*form.games.errors, message]
    response = render_page_or_block(TEMPLATE, "import_form", status=422,
                                    **page_context("import_form", form=form))
    if wants_fragment():  # the form posts into the result slot; errors belong on the form
        response.headers["HX-Retarget"] = "#import-form"
        response.headers["HX-Reswap"] = "outerHTML"
    return response


@bp.route("/import")
def import_page():
    """The upload form and the recent imports (the list alone for htmx)."""
    return render_page_or_block(TEMPLATE, "import_history", **page_context("import_history"))


@bp.route("/import", methods=["POST"])
def import_start():
    """Read and apply an uploaded games file; 422 with the form when it cannot be used."""
    form = ImportForm()
    if not form.validate_on_submit():
        return form_error(form)
    upload = form.games.data
    try:
        record = import_catalogue(upload.read(), upload.filename or "games.csv",
                                  current_user.username, dry_run=form.dry_run.data)
    except (CatalogueFileError, ImportConflict) as error:
        return form_error(form, str(error))
    log.info("Tavern import %s by %s: %s added, %s updated, %s rejects", record.id,
             current_user.username, record.added, record.updated, record.reject_count)
    if not wants_fragment():
        return redirect(url_for("tavern.import_result", import_id=record.id), code=303)
    response = render_page_or_block(TEMPLATE, "import_result", status=201,
                                    **page_context("import_result", record))
    fresh = render_block(TEMPLATE, "import_form", oob=True, **page_context("import_form"))
    response.set_data(response.get_data() + fresh.encode())  # no used file stays behind
    response.headers["HX-Push-Url"] = url_for("tavern.import_result", import_id=record.id)
    return trigger(trigger(response, CHANGED), GAMES_CHANGED)


@bp.route("/import/<import_id>")
def import_result(import_id: str):
    """One import: what it changed, its notes and its bad rows."""
    record = record_or_404(import_id)
    return render_page_or_block(TEMPLATE, "import_result",
                                **page_context("import_result", record))


@bp.route("/import/<import_id>/report.csv")
def import_report(import_id: str):
    """The bad rows of an import as CSV: file, line, reason, raw row (spreadsheet-safe)."""
    record = record_or_404(import_id)
    # The BOM tells spreadsheet programs that the report is UTF-8.
    return Response("\ufeff" + record.report, mimetype="text/csv", headers={
        "Content-Disposition":
            f'attachment; filename="tavern-import-{record.id[:8]}-rejects.csv"'})
