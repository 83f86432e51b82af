"""Export items with their labels and each label's provenance, as CSV or JSONL.

The download is streamed: rows are read in pages by id (keyset pagination, ``id > last``, never
OFFSET, so every page costs the same) as plain column tuples (no ORM objects pile up in the
session) and written out page by page. Memory stays flat and the first bytes leave at once, so
100,000 items never hit a proxy's time-out. ``flask gifts export`` writes the same lines to
stdout or a file.

Filters (page, download and CLI alike): ``status`` (pending, accepted, rejected), ``label``
(``group:label``: items carrying that label) and ``source`` (human, rule, model: items with a
label from that source; with ``label``, that label from that source).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import click
from flask import Response, request, stream_with_context
from flask_wtf import FlaskForm
from sqlalchemy import exists, func, select
from wtforms import RadioField, SelectField
from wtforms.fields.choices import SelectChoice

from webapp.csv_import import neutralise
from webapp.extensions import db
from webapp.gifts import bp
from webapp.gifts.cli import gifts_cli
from webapp.gifts.models import (
    ATTRIBUTES,
    SOURCES,
    STATUSES,
    Item,
    ItemLabel,
    Label,
    LabelGroup,
)
from webapp.htmx import render_page_or_block

TEMPLATE = "gifts/export.html"
FORMATS = ("csv", "jsonl")
MIMETYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
#: Items read per query. Big enough that the per-query cost vanishes, small enough that the
#: ``IN (...)`` list of the labels query stays cheap on SQLite and PostgreSQL.
BATCH = 500
#: Above this many items the page suggests the command line too (no web time limit there).
LARGE_EXPORT = 100_000
COLUMNS = ("id", "sku", "name", "description", "vendor", "category", "unit_price", *ATTRIBUTES,
           "image_url", "source", "source_row", "status", "reviewed_by", "reviewed_at",
           "labels", "labels_json")
# The export reads plain table columns (Core), not ORM attributes: the rows are the same, but
# SQLAlchemy skips its ORM result machinery, which costs about as much as the query itself here.
_ITEMS = Item.__table__.c
_LABELS = ItemLabel.__table__.c
#: The item columns read from the database, in ``COLUMNS`` order (labels come separately).
_ITEM_COLUMNS = (_ITEMS.id, _ITEMS.sku, _ITEMS.name, _ITEMS.description, _ITEMS.vendor,
                 _ITEMS.category, _ITEMS.unit_price, *(_ITEMS[name] for name in ATTRIBUTES),
                 _ITEMS.image_url, _ITEMS.source, _ITEMS.source_row, _ITEMS.status,
                 _ITEMS.reviewed_by, _ITEMS.reviewed_at)


class ExportError(ValueError):
    """A filter that cannot be used (an unknown label, status or source)."""


@dataclass(frozen=True)
class ExportFilters:
    """Which items to export; empty means "any"."""

    status: str = ""
    label: str = ""
    source: str = ""

    def as_args(self) -> dict[str, str]:
        """The filters that are set, as query-string arguments."""
        return {key: value for key, value in
                (("status", self.status), ("label", self.label), ("source", self.source))
                if value}


# --- choices -------------------------------------------------------------------------------

def label_names() -> list[str]:
    """Every label as ``group:label``, in the vocabulary's order."""
    query = (select(LabelGroup.name, Label.name).join(Label.group)
             .order_by(LabelGroup.position, LabelGroup.name_key, Label.position, Label.name_key))
    return [f"{group}:{label}" for group, label in db.session.execute(query)]


def label_id(qualified: str) -> int:
    """The id of the label named ``group:label``; ExportError when there is none."""
    group, _, name = qualified.partition(":")
    found = db.session.scalar(select(Label.id).join(Label.group)
                              .where(LabelGroup.name == group, Label.name == name))
    if found is None:
        raise ExportError(f"There is no label {qualified!r}; labels are written group:label, "
                          "e.g. theme:coffee.")
    return found


# --- the query ------------------------------------------------------------------------------

def filtered_items(filters: ExportFilters):
    """A SELECT of the exported item columns with the filters applied (no order, no limit)."""
    if filters.status and filters.status not in STATUSES:
        raise ExportError(f"Unknown status {filters.status!r}: use one of {', '.join(STATUSES)}.")
    if filters.source and filters.source not in SOURCES:
        raise ExportError(f"Unknown label source {filters.source!r}: use one of "
                          f"{', '.join(SOURCES)}.")
    query = select(*_ITEM_COLUMNS)
    if filters.status:
        query = query.where(_ITEMS.status == filters.status)
    if filters.label or filters.source:
        wanted = select(_LABELS.id).where(_LABELS.item_id == _ITEMS.id)
        if filters.label:
            wanted = wanted.where(_LABELS.label_id == label_id(filters.label))
        if filters.source:
            wanted = wanted.where(_LABELS.source == filters.source)
        query = query.where(exists(wanted))
    return query


def count_items(filters: ExportFilters) -> int:
    """How many items the export with these filters holds."""
    return db.session.scalar(select(func.count()).select_from(
        filtered_items(filters).subquery()))


def item_batches(filters: ExportFilters, batch: int = BATCH) -> Iterator[list]:
    """The filtered items as lists of rows, ``batch`` at a time, by id (keyset pagination)."""
    query = filtered_items(filters).order_by(_ITEMS.id).limit(batch)
    last = 0
    while True:
        rows = db.session.execute(query.where(_ITEMS.id > last)).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def vocabulary() -> dict[int, tuple[int, str]]:
    """Every label's place in the vocabulary's order and its ``group:label`` name, by id.

    Read once per export, so the per-page labels query needs no join.
    """
    query = (select(Label.id, LabelGroup.name, Label.name).join(Label.group)
             .order_by(LabelGroup.position, LabelGroup.name_key, Label.position, Label.name_key))
    return {label: (place, f"{group}:{name}")
            for place, (label, group, name) in enumerate(db.session.execute(query))}


def labels_of(item_ids: list[int], names: dict[int, tuple[int, str]] | None = None
              ) -> dict[int, list[dict]]:
    """The labels of these items with their provenance, by item id, in vocabulary order."""
    names = names if names is not None else vocabulary()
    query = (select(_LABELS.item_id, _LABELS.label_id, _LABELS.source, _LABELS.created_by,
                    _LABELS.created_at, _LABELS.rule_name, _LABELS.model_version,
                    _LABELS.confidence)
             .where(_LABELS.item_id.in_(item_ids)))
    found = defaultdict(list)
    # fetchall: one driver call per page, not one per row.
    for (item_id, label, source, by, at, rule, version,
         confidence) in db.session.execute(query).all():
        place, name = names[label]
        found[item_id].append((place, {
            "label": name, "source": source, "by": by,
            "at": at.isoformat(timespec="seconds") if at else None, "rule": rule,
            "model_version": version,
            "confidence": round(confidence, 4) if confidence is not None else None}))
    return {item_id: [label for _, label in sorted(labels, key=_first)]
            for item_id, labels in found.items()}


def _first(pair: tuple) -> object:
    """The first of a pair (a sort key)."""
    return pair[0]


# --- formatting -----------------------------------------------------------------------------

def describe_label(label: dict) -> str:
    """One label with its provenance, for the CSV ``labels`` column.

    ``theme:coffee (human: staff 2026-11-27)``, ``occasion:onboarding (rule: Coffee rule)``,
    ``audience:everyone (model: 3, 0.87)``.
    """
    if label["source"] == "human":
        when = (label["at"] or "")[:10]
        detail = " ".join(part for part in (label["by"] or "someone", when) if part)
    elif label["source"] == "rule":
        detail = label["rule"] or "a deleted rule"
    else:
        confidence = label["confidence"]
        detail = ", ".join(part for part in (
            label["model_version"] or "unknown version",
            f"{confidence:.2f}" if confidence is not None else "") if part)
    return f"{label['label']} ({label['source']}: {detail})"


def _record(row, labels: list[dict]) -> dict:
    """One item as a dict in ``COLUMNS`` order (without the CSV-only ``labels_json``)."""
    record = dict(zip(COLUMNS, row, strict=False))
    record["unit_price"] = float(record["unit_price"])
    if record["reviewed_at"] is not None:
        record["reviewed_at"] = record["reviewed_at"].isoformat(timespec="seconds")
    record["labels"] = labels
    return record


def _csv_cells(record: dict) -> list:
    """The CSV row: text made spreadsheet-safe, prices with two decimals, booleans as 0/1."""
    cells = []
    for column in COLUMNS[:-2]:
        value = record[column]
        if column == "unit_price":
            cells.append(f"{value:.2f}")
        elif isinstance(value, bool):
            cells.append(int(value))
        elif isinstance(value, str):
            cells.append(neutralise(value))
        else:
            cells.append("" if value is None else value)
    labels = record["labels"]
    cells.append(neutralise("; ".join(describe_label(label) for label in labels)))
    cells.append(neutralise(json.dumps(labels, ensure_ascii=False)))
    return cells


def _records(filters: ExportFilters, batch: int) -> Iterator[list[dict]]:
    """The exported items as records, one page at a time."""
    names = vocabulary()
    for rows in item_batches(filters, batch):
        labels = labels_of([row.id for row in rows], names)
        yield [_record(row, labels.get(row.id, [])) for row in rows]


def export_chunks(fmt: str, filters: ExportFilters, batch: int = BATCH) -> Iterator[str]:
    """The export as text, one chunk per page of items (CSV starts with its header).

    Raises ExportError for an unknown format or filter before anything is produced, so a
    caller can still answer with an error instead of half a file.
    """
    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}: use csv or jsonl.")
    filtered_items(filters)  # validates the filters now, not after the headers are sent
    return _csv_chunks(filters, batch) if fmt == "csv" else _jsonl_chunks(filters, batch)


def _csv_chunks(filters: ExportFilters, batch: int) -> Iterator[str]:
    """CSV text: the header, then one chunk per page."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield buffer.getvalue()
    for records in _records(filters, batch):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(_csv_cells(record) for record in records)
        yield buffer.getvalue()


def _jsonl_chunks(filters: ExportFilters, batch: int) -> Iterator[str]:
    """JSON Lines: one object per item, one chunk per page."""
    for records in _records(filters, batch):
        yield "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def export_filename(fmt: str, today: date | None = None) -> str:
    """The download's name, dated (UTC): ``gifts-items-2026-11-27.csv``."""
    today = today or datetime.now(UTC).date()
    return f"gifts-items-{today.isoformat()}.{fmt}"


# --- the page and the download ------------------------------------------------------------

class ExportForm(FlaskForm):
    """The export's format and filters (GET, so no CSRF token)."""

    class Meta:
        csrf = False

    format = RadioField("Format", default="csv", choices=[
        SelectChoice("csv", "CSV (spreadsheets)"),
        SelectChoice("jsonl", "JSON Lines (one item per line, for programs)")])
    status = SelectField("Status", default="", choices=[
        SelectChoice("", "Any status"), SelectChoice("pending", "Pending (in the queue)"),
        SelectChoice("accepted", "Accepted"), SelectChoice("rejected", "Rejected")])
    #: The vocabulary, set by ``export_form``.
    label = SelectField("Label", default="", choices=[])
    source = SelectField("Label source", default="", choices=[
        SelectChoice("", "Any source"), SelectChoice("human", "Human"),
        SelectChoice("rule", "Rule"), SelectChoice("model", "Model")],
        description="Items with a label from this source (with a label chosen: that label).")

    def filters(self) -> ExportFilters:
        """The chosen filters."""
        return ExportFilters(self.status.data or "", self.label.data or "",
                             self.source.data or "")


def export_form(args) -> ExportForm:
    """The form bound to the query string, with the vocabulary as label choices."""
    form = ExportForm(args)
    form.label.choices = [SelectChoice("", "Any label"),
                          *(SelectChoice(name) for name in label_names())]
    return form


def page_response(form: ExportForm, status: int = 200):
    """The export page (or its summary block for htmx), with the matching item count."""
    valid = status == 200
    return render_page_or_block(
        TEMPLATE, "export_summary", status=status, form=form,
        count=count_items(form.filters()) if valid else None,
        total=db.session.scalar(select(func.count(Item.id))), large_export=LARGE_EXPORT,
        filter_args=form.filters().as_args() if valid else {})


@bp.route("/export")
def export_page():
    """Choose a format and filters; shows how many items the file will hold."""
    form = export_form(request.args)
    if request.args and not form.validate():
        return page_response(form, 422)
    return page_response(form)


@bp.route("/export/download")
def export_download():
    """The export as a streamed download (CSV or JSONL, with the page's filters)."""
    form = export_form(request.args)
    if not form.validate():
        return page_response(form, 422)
    fmt = form.format.data
    chunks = export_chunks(fmt, form.filters())
    if fmt == "csv":
        # The BOM tells spreadsheet programs that the file is UTF-8.
        chunks = _prefixed("\ufeff", chunks)
    response = Response(stream_with_context(chunks), mimetype=MIMETYPES[fmt])
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{export_filename(fmt)}"')
    # A proxy must not hold the stream back to buffer it.
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _prefixed(prefix: str, chunks: Iterable[str]) -> Iterator[str]:
    """``chunks`` with ``prefix`` first."""
    yield prefix
    yield from chunks


# --- the command ----------------------------------------------------------------------------

@gifts_cli.command("export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True,
              help="csv (one row per item, labels in two columns) or jsonl (one object a line).")
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file instead of stdout.")
@click.option("--status", type=click.Choice(STATUSES), help="Only items with this status.")
@click.option("--label", help="Only items carrying this label (group:label, e.g. theme:coffee).")
@click.option("--source", type=click.Choice(SOURCES),
              help="Only items with a label from this source (with --label: that label).")
def export_command(fmt: str, output: Path | None, status: str | None, label: str | None,
                   source: str | None) -> None:
    """Export items with their labels and provenance (CSV or JSONL) to stdout or --output."""
    filters = ExportFilters(status or "", label or "", source or "")
    try:
        chunks = export_chunks(fmt, filters)
    except ExportError as error:
        raise click.BadParameter(str(error)) from None
    if output is None:
        for chunk in chunks:
            click.echo(chunk, nl=False)
        return
    # newline="" keeps the CSV's own CRLF line ends as the csv module wrote them.
    with output.open("w", encoding="utf-8", newline="") as handle:
        for chunk in chunks:
            handle.write(chunk)
    click.echo(f"{count_items(filters)} items written to {output}", err=True)


__all__ = ["COLUMNS", "ExportError", "ExportFilters", "count_items", "describe_label",
           "export_chunks", "export_filename", "filtered_items", "label_names"]
