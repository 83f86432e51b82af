"""Gift item imports: upload, map the columns, watch the job, download the rejects; profiles.

Pages (one template each): ``gifts/import.html`` (upload form, profiles, recent imports),
``gifts/import_mapping.html`` (the mapping step) and ``gifts/import_result.html`` (progress,
counts, rejects; it polls itself every second while the job runs). Every form works without
JavaScript (post, then a 303 redirect); with htmx a bad form comes back in place with 422 and
a good one navigates with ``HX-Redirect``.
"""

from __future__ import annotations

import logging
import sys

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired, FileSize
from sqlalchemy import func, select
from wtforms import RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from webapp import jobs
from webapp.extensions import db
from webapp.gifts import bp
from webapp.gifts.imports import (
    FIELDS,
    MAX_FILE_BYTES,
    ImportFileError,
    Preview,
    discard_file,
    first_rejects,
    mapping_errors,
    mapping_from_profile,
    read_preview,
    reject_rows,
    set_mapping,
    start_import,
    store_upload,
    sync_with_job,
    unmapped_columns,
)
from webapp.gifts.models import ImportProfile, ItemImport
from webapp.htmx import render_page_or_block, wants_fragment

log = logging.getLogger(__name__)

PAGE = "gifts/import.html"
MAPPING = "gifts/import_mapping.html"
RESULT = "gifts/import_result.html"
PROFILE_NAME_MAX = ImportProfile.__table__.c.name.type.length
PROFILE_SOURCE_MAX = ImportProfile.__table__.c.source.type.length
DUPLICATE_CHOICES = [
    SelectChoice("skip", "Skip it: keep the stored item as it is"),
    SelectChoice("merge", "Merge: update the stored item with the row's non-empty fields"),
]
IGNORE = ""
FIELD_CHOICES = [SelectChoice(IGNORE, "— ignore —"),
                 *(SelectChoice(name, label) for name, label in FIELDS.items())]


# --- Forms ----------------------------------------------------------------------------------


class UploadForm(FlaskForm):
    """A CSV or XLSX file (told by its content), an optional profile, the duplicate policy."""

    upload = FileField("CSV or XLSX file", validators=[
        FileRequired("Choose a file to upload."),
        FileSize(max_size=sys.maxsize, min_size=1, message="The file is empty."),
        FileSize(max_size=MAX_FILE_BYTES,
                 message=f"The file is larger than {MAX_FILE_BYTES // 1024 // 1024} MB; split "
                         "it into smaller files."),
    ])
    #: Choices are the saved profiles, set by ``with_profiles``.
    profile = SelectField("Mapping profile", choices=[], description=(
        "With a profile the file imports in one click; without one you check the mapping."))
    on_duplicate = RadioField("When a row is an item we already have", default="skip",
                              choices=DUPLICATE_CHOICES)


def with_profiles(form: UploadForm) -> UploadForm:
    """Offer the saved profiles (by id) in the upload form."""
    profiles = db.session.scalars(select(ImportProfile).order_by(ImportProfile.name))
    form.profile.choices = [SelectChoice("", "None: map the columns now"),
                            *(SelectChoice(str(p.id), p.name + (f" ({p.source})" if p.source
                                                                else "")) for p in profiles)]
    return form


class ProfileForm(FlaskForm):
    """A profile's name and source (rename)."""

    name = StringField("Profile name", validators=[
        DataRequired("Give the profile a name."), Length(max=PROFILE_NAME_MAX)])
    source = StringField("Source", validators=[Optional(), Length(max=PROFILE_SOURCE_MAX)])


def profile_form(profile: ImportProfile, **kwargs) -> ProfileForm:
    """The rename form of one profile; the prefix keeps field ids unique on the page."""
    return ProfileForm(prefix=f"profile-{profile.id}", **kwargs)


class MappingForm(FlaskForm):
    """The mapping step; one select per source column is added by ``mapping_form``."""

    on_duplicate = RadioField("When a row is an item we already have", choices=DUPLICATE_CHOICES)
    profile_name = StringField("Save this mapping as a profile named", description=(
        "Optional. The next file from this source then imports in one click."),
        validators=[Optional(), Length(max=PROFILE_NAME_MAX)])
    profile_source = StringField("Source of such files", description=(
        "Optional, e.g. \"Northwind price list\"."),
        validators=[Optional(), Length(max=PROFILE_SOURCE_MAX)])

    #: The file's headers, one select each (``column_0``...); set by ``mapping_form``.
    headers: tuple[str, ...] = ()

    def chosen_mapping(self) -> dict[str, str]:
        """``{header: field}`` from the column selects (ignored columns left out)."""
        return {header: field.data for header, field in zip(self.headers, self.column_fields(),
                                                            strict=True)
                if field.data and field.data != IGNORE}

    def column_fields(self) -> list[SelectField]:
        """The column selects, in file order."""
        return [self[f"column_{i}"] for i in range(len(self.headers))]


def mapping_form(record: ItemImport, formdata=None) -> MappingForm:
    """The mapping form for ``record``'s headers, pre-filled with its current mapping."""
    headers = record.headers or []

    class _Form(MappingForm):
        pass

    _Form.headers = tuple(headers)

    for i, header in enumerate(headers):
        setattr(_Form, f"column_{i}", SelectField(header, choices=FIELD_CHOICES,
                                                  default=(record.mapping or {}).get(header,
                                                                                     IGNORE)))
    kwargs = {} if formdata is not None else {"formdata": None}
    form = _Form(**kwargs, on_duplicate=record.on_duplicate)
    if formdata is None:
        form.on_duplicate.data = record.on_duplicate
    return form


def mapping_form_errors(form: MappingForm, record: ItemImport) -> list[str]:
    """Problems of a submitted mapping form beyond its fields' own checks."""
    errors = mapping_errors(form.chosen_mapping(), record.headers or [])
    name = (form.profile_name.data or "").strip()
    if name:
        taken = db.session.scalar(select(ImportProfile).where(
            func.lower(ImportProfile.name) == name.lower()))
        if taken is not None and taken.id != record.profile_id:
            form.profile_name.errors = [*form.profile_name.errors, (
                f"A profile named {taken.name!r} exists already; choose another name.")]
    return errors


# --- Helpers ----------------------------------------------------------------------------------


def import_or_404(import_id: str) -> ItemImport:
    """The import, or 404."""
    record = db.session.get(ItemImport, import_id)
    if record is None:
        abort(404, "There is no such import.")
    return record


def profile_or_404(profile_id: int) -> ImportProfile:
    """The profile, or 404."""
    profile = db.session.get(ImportProfile, profile_id)
    if profile is None:
        abort(404, "There is no such profile.")
    return profile


def go_to(url: str):
    """Navigate: ``HX-Redirect`` for htmx, 303 for a plain form."""
    if wants_fragment():
        response = Response(status=204)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url, code=303)


def recent_imports():
    """The recent imports, newest first, one page (``?page=``) of PAGE_SIZE."""
    query = select(ItemImport).order_by(ItemImport.created_at.desc(), ItemImport.id)
    return db.paginate(query, page=request.args.get("page", 1, type=int),
                       per_page=current_app.config["PAGE_SIZE"], error_out=False)


def page_context(form: UploadForm | None = None, profile_forms: dict | None = None) -> dict:
    """The import page's context (upload form, profiles, recent imports)."""
    profiles = list(db.session.scalars(select(ImportProfile).order_by(ImportProfile.name)))
    forms = {p.id: profile_form(p, formdata=None, obj=p) for p in profiles}
    forms.update(profile_forms or {})
    return {"form": form or with_profiles(UploadForm(formdata=None)), "profiles": profiles,
            "profile_forms": forms, "imports": recent_imports(), "fields": FIELDS,
            "max_megabytes": MAX_FILE_BYTES // 1024 // 1024}


def mapping_context(record: ItemImport, form: MappingForm, errors: list[str] | None = None,
                    notes: list[str] | None = None) -> dict:
    """The mapping step's context: the first rows by column, the form, notes and errors."""
    preview, file_error = None, None
    try:
        preview = read_preview(record.stored_path) if record.stored_path else None
    except (ImportFileError, OSError) as error:
        file_error = str(error)
    headers = record.headers or []
    samples = {header: [row[i] for row in preview.rows] for i, header in enumerate(headers)} \
        if preview else {}
    return {"record": record, "form": form, "samples": samples,
            "sample_count": len(preview.rows) if preview else 0,
            "notes": [*(preview.notes if preview else []), *(notes or [])],
            "errors": errors or [], "file_error": file_error,
            "unmapped": unmapped_columns(form.chosen_mapping(), headers),
            "profile": db.session.get(ImportProfile, record.profile_id)
            if record.profile_id else None}


def result_context(record: ItemImport) -> dict:
    """The result card's context; an import whose job died is marked failed first."""
    sync_with_job(record)
    job = jobs.get_job(record.job_id) if record.job_id else None
    db.session.refresh(record)
    return {"record": record, "job": job, "polling": record.status in ("queued", "running"),
            "rejects": first_rejects(record.id), "fields": FIELDS}


# --- Upload -----------------------------------------------------------------------------------


@bp.route("/import")
def import_page():
    """The upload form, the mapping profiles and the recent imports (the list alone for htmx)."""
    return render_page_or_block(PAGE, "import_history", **page_context())


@bp.route("/import", methods=["POST"])
def import_upload():
    """Store an upload; go to its mapping step, or straight to its import with a profile."""
    form = with_profiles(UploadForm())
    if not form.validate():
        return render_page_or_block(PAGE, "upload_form", status=422, **page_context(form))
    profile = db.session.get(ImportProfile, int(form.profile.data)) if form.profile.data else None
    try:
        record, preview = store_upload(form.upload.data, current_user.username,
                                       form.on_duplicate.data, profile)
    except ImportFileError as error:
        form.upload.errors = [*form.upload.errors, str(error)]
        return render_page_or_block(PAGE, "upload_form", status=422, **page_context(form))
    log.info("Gift import %s uploaded by %s: %s (%d columns)", record.id,
             current_user.username, record.filename, len(preview.headers))
    if profile is not None:
        problem = profile_misfit(profile, record, preview)
        if problem is None:
            start_import(record)
            return go_to(url_for("gifts.import_result", import_id=record.id))
        flash(problem, "error")
    return go_to(url_for("gifts.import_mapping", import_id=record.id))


def profile_misfit(profile: ImportProfile, record: ItemImport,
                   preview: Preview) -> str | None:
    """Why ``profile`` cannot import this file in one click, or None when it can.

    A header the file repeats is a misfit when the profile maps it: the profile names one
    column, the file has several, and picking the first could import the wrong one.
    """
    _, missing = mapping_from_profile(profile.mapping, preview.headers)
    mapped = {" ".join(str(source).split()).casefold() for source in profile.mapping or {}}
    repeated = [header for header in preview.repeated if header.casefold() in mapped]
    if repeated:
        return (f"This file has more than one column named {', '.join(map(repr, repeated))} "
                f"(line 1), so the profile {profile.name!r} cannot tell which to import: check "
                "the mapping below.")
    if mapping_errors(record.mapping, preview.headers):
        return (f"The profile {profile.name!r} does not fit this file"
                + (f" (it has no column {', '.join(map(repr, missing))})" if missing else "")
                + ": check the mapping below.")
    return None


# --- Mapping step -----------------------------------------------------------------------------


@bp.route("/import/<import_id>/mapping")
def import_mapping(import_id: str):
    """The mapping step: the first rows, a field for each column, profile and start."""
    record = import_or_404(import_id)
    if record.status != "mapping":
        return redirect(url_for("gifts.import_result", import_id=record.id), code=303)
    form = mapping_form(record)
    errors = mapping_errors(form.chosen_mapping(), record.headers or [])
    return render_page_or_block(MAPPING, "mapping_form",
                                **mapping_context(record, form, errors))


@bp.route("/import/<import_id>/mapping/check", methods=["POST"])
def import_mapping_check(import_id: str):
    """What the mapping being edited would do (errors, unmapped columns); changes nothing."""
    record = import_or_404(import_id)
    form = mapping_form(record, request.form)
    form.validate()
    errors = mapping_errors(form.chosen_mapping(), record.headers or [])
    return render_page_or_block(MAPPING, "mapping_status",
                                **mapping_context(record, form, errors))


@bp.route("/import/<import_id>/mapping", methods=["POST"])
def import_mapping_save(import_id: str):
    """Check the mapping, save the profile if named, and start the import (422 if wrong)."""
    record = import_or_404(import_id)
    if record.status != "mapping":
        flash("This import has already been started.", "info")
        return go_to(url_for("gifts.import_result", import_id=record.id))
    form = mapping_form(record, request.form)
    valid = form.validate()
    errors = mapping_form_errors(form, record)
    if not valid or errors or form.profile_name.errors:
        return render_page_or_block(MAPPING, "mapping_form", status=422,
                                    **mapping_context(record, form, errors))
    mapping = form.chosen_mapping()
    set_mapping(record, mapping, form.on_duplicate.data)
    if form.profile_name.data and form.profile_name.data.strip():
        record.profile_id = save_profile(record, form).id
    start_import(record)
    return go_to(url_for("gifts.import_result", import_id=record.id))


def save_profile(record: ItemImport, form: MappingForm) -> ImportProfile:
    """Create the named profile, or update the one this import started from (same name)."""
    name = form.profile_name.data.strip()
    profile = db.session.get(ImportProfile, record.profile_id) if record.profile_id else None
    if profile is None or profile.name.lower() != name.lower():
        profile = ImportProfile(name=name)
        db.session.add(profile)
    profile.source = (form.profile_source.data or "").strip()
    profile.mapping = dict(record.mapping)
    profile.on_duplicate = record.on_duplicate
    db.session.flush()
    log.info("Import profile %r saved by %s", name, current_user.username)
    return profile


@bp.route("/import/<import_id>/discard", methods=["POST"])
def import_discard(import_id: str):
    """Drop an import still at its mapping step, with its stored file."""
    record = import_or_404(import_id)
    if record.status != "mapping":
        flash("This import has started; it can no longer be discarded.", "error")
        return go_to(url_for("gifts.import_result", import_id=record.id))
    discard_file(record)
    db.session.delete(record)
    db.session.commit()
    flash(f"The upload {record.filename!r} was discarded.", "info")
    return go_to(url_for("gifts.import_page"))


# --- Result -----------------------------------------------------------------------------------


@bp.route("/import/<import_id>")
def import_result(import_id: str):
    """One import: live progress while it runs, then its counts and first rejects."""
    record = import_or_404(import_id)
    if record.status == "mapping":
        return redirect(url_for("gifts.import_mapping", import_id=record.id), code=303)
    return render_page_or_block(RESULT, "import_result", **result_context(record))


@bp.route("/import/<import_id>/rejects.csv")
def import_rejects(import_id: str):
    """The reject file, streamed: line, reason, then the row's cells (spreadsheet-safe)."""
    record = import_or_404(import_id)
    return Response(stream_with_context(reject_rows(record)), mimetype="text/csv", headers={
        "Content-Disposition":
            f'attachment; filename="gift-import-{record.id[:8]}-rejects.csv"'})


# --- Profiles ---------------------------------------------------------------------------------


def profiles_response(status: int = 200, profile_forms: dict | None = None):
    """The profiles block for htmx, or back to the page (303) for a plain form."""
    if not wants_fragment() and status < 400:
        return redirect(url_for("gifts.import_page"), code=303)
    return render_page_or_block(PAGE, "import_profiles", status=status,
                                **page_context(profile_forms=profile_forms))


@bp.route("/import/profiles/<int:profile_id>", methods=["POST"])
def import_profile_rename(profile_id: int):
    """Rename a profile (or change its source); 422 in place for a bad or taken name."""
    profile = profile_or_404(profile_id)
    form = profile_form(profile)
    if form.validate():
        name = form.name.data.strip()
        taken = db.session.scalar(select(ImportProfile).where(
            func.lower(ImportProfile.name) == name.lower(), ImportProfile.id != profile.id))
        if taken is None:
            profile.name, profile.source = name, (form.source.data or "").strip()
            db.session.commit()
            if not wants_fragment():
                flash(f"Profile renamed to {name!r}.", "success")
            return profiles_response()
        form.name.errors = [*form.name.errors, f"A profile named {taken.name!r} exists already."]
    return profiles_response(422, {profile.id: form})


@bp.route("/import/profiles/<int:profile_id>/delete", methods=["POST"])
def import_profile_delete(profile_id: int):
    """Delete a profile; imports made with it keep their own mapping."""
    profile = profile_or_404(profile_id)
    db.session.delete(profile)
    db.session.commit()
    return profiles_response()
