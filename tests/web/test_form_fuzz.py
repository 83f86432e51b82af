"""Every HTML form and filter fuzzed with hostile input (hypothesis), generated from the URL map.

Every page route (each method; not the JSON API, which schemathesis fuzzes, nor static files)
gets generated requests from a logged-in admin (about 75 per route under CI), and the routes
staff may use get a fifth as many from staff, on the demo data plus one of every row a URL can
name. The fields come from the app itself, so a new route or field is fuzzed without a new
test:

- the WTForms classes each view reaches (read from its code, through the helpers it calls),
  with their types, choices and ranges;
- the forms the app renders (every GET page parsed once): ``action``/``hx-post``/``hx-get``
  targets with their inputs and option values, which also finds the dynamic fields (the gift
  import's ``column_N`` selects, profile prefixes, hidden versions).

Values are half plausible (so requests pass validation and reach the services) and half
hostile: huge strings, odd unicode, NULs, signed and enormous numbers, NaN, 1e400, wrong types,
markup and formula payloads; fields are omitted or repeated, random keys are added, files get
arbitrary bytes and names. URL ids are seeded rows or hostile integers.

The only acceptable answers are 2xx, 3xx and 4xx with a body; anything else is a bug (an
exception propagates under ``TESTING``, and a 503 would be a database error dressed as an
outage). The "ci" hypothesis profile (``CI=true``) raises the cases to at least ``CASE_FLOOR``;
the last test checks it.
"""

from __future__ import annotations

import functools
import inspect
import io
import re
import types
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import openpyxl
import pytest
from flask_wtf.file import FileField as FlaskFileField
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect
from werkzeug.test import encode_multipart
from wtforms import (
    BooleanField,
    DateField,
    DateTimeField,
    DecimalField,
    FileField,
    FloatField,
    Form,
    IntegerField,
    MultipleFileField,
    SelectFieldBase,
    SelectMultipleField,
)
from wtforms.validators import AnyOf, Length, NumberRange

from tests.support import (
    TEST_PASSWORD,
    base_test_config,
    make_user,
    skip_or_fail,
    tear_down_app,
    wait_for_job,
)
from tests.web.test_access_matrix import ACCESS, Token
from webapp import create_app
from webapp.extensions import db

#: The hypothesis profile (tests/conftest.py): "ci" under CI=true, or HYPOTHESIS_PROFILE=ci.
FULL_SIZE = settings.get_current_profile_name() == "ci"
#: Generated cases over the whole file: >= 10,000 at full size; a quick sample on a laptop.
CASE_BUDGET = 10_300 if FULL_SIZE else 800
#: What the last test requires at full size.
CASE_FLOOR = 10_000
#: Staff repeat the routes they may use with this share of the admin's examples.
STAFF_SHARE = 0.2
#: Routes that cost ten times an ordinary request get this share of the examples, so they do
#: not take a third of the run: the evaluation chart (drawn by matplotlib) and the routes that
#: hash a password (scrypt, deliberately slow).
SLOW_ROUTES = {"pizzeria.evaluation_chart": 0.2, "admin.users_password": 0.2,
               "admin.users_create": 0.4, "auth.login": 0.4}
#: Routes never fuzzed here: the JSON API has its own fuzzing (test_api_schema.py), and static
#: files have no input.
SKIPPED_ENDPOINTS = frozenset({"static", "tavern.static", "gifts.static"})
#: The accounts that fuzz; the URL ids of users never point at them, so a fuzzed "deactivate"
#: cannot log the fuzzer out.
FUZZERS = {"admin": "fuzz-admin", "staff": "fuzz-staff"}
DEMO_DATA = Path(__file__).resolve().parents[2] / "webapp" / "demo" / "data"

#: Cases sent, per (role, endpoint, method); statuses per endpoint. Reported at the end.
CASES: Counter[tuple[str, str, str]] = Counter()
STATUSES: defaultdict[str, Counter[int]] = defaultdict(Counter)


# --- Routes -----------------------------------------------------------------------------------


def is_fuzzed(rule) -> bool:
    """True for a page route (not the JSON API, not static files)."""
    return rule.endpoint not in SKIPPED_ENDPOINTS and not isinstance(ACCESS.get(rule.endpoint),
                                                                      Token)


def fuzzed_routes(app) -> list[tuple[str, str]]:
    """(endpoint, method) of every fuzzed route; reads before writes, deletions last, so the
    seeded rows stay there for the routes that need them."""
    routes = {(rule.endpoint, method) for rule in app.url_map.iter_rules() if is_fuzzed(rule)
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    destructive = ("delete", "discard", "remove", "detach", "toggle", "logout")
    return sorted(routes, key=lambda route: (route[1] != "GET",
                                             any(word in route[0] for word in destructive),
                                             route))


def staff_may_use(endpoint: str) -> bool:
    """True when the access matrix lets staff use ``endpoint`` (so the role matters)."""
    allowed = ACCESS.get(endpoint)
    return allowed == "public" or (isinstance(allowed, tuple) and "staff" in allowed)


def route_params() -> list:
    """(role, endpoint, method) for every route, as pytest params (read from a bare app)."""
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    routes = fuzzed_routes(app)
    return [pytest.param(role, endpoint, method, id=f"{role}-{method}-{endpoint}")
            for endpoint, method in routes for role in FUZZERS
            if role == "admin" or staff_may_use(endpoint)]


def weight(role: str, endpoint: str) -> float:
    """A route's share of the examples, relative to an ordinary route fuzzed by the admin."""
    return (1.0 if role == "admin" else STAFF_SHARE) * SLOW_ROUTES.get(endpoint, 1.0)


ROUTES = route_params()
#: Examples of an ordinary route fuzzed by the admin, so the file sends about CASE_BUDGET.
EXAMPLES = CASE_BUDGET / sum(weight(*param.values[:2]) for param in ROUTES)


def examples(role: str, endpoint: str) -> int:
    """How many cases hypothesis generates for ``endpoint`` as ``role`` (at least two)."""
    return max(2, round(EXAMPLES * weight(role, endpoint)))


# --- Fields: from the form classes each view reaches, and from the rendered pages -------------


@dataclass(frozen=True)
class FieldSpec:
    """What the fuzzer knows about one input: its kind, and plausible values."""

    name: str
    kind: str  # text, int, decimal, date, bool, select, multi, file
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    max_length: int | None = None


def field_kind(field) -> str:
    """The fuzzing kind of a bound WTForms field."""
    kinds = ((FileField, "file"), (FlaskFileField, "file"), (MultipleFileField, "file"),
             (BooleanField, "bool"), (DecimalField, "decimal"), (FloatField, "decimal"),
             (IntegerField, "int"), (DateField, "date"), (DateTimeField, "date"),
             (SelectMultipleField, "multi"), (SelectFieldBase, "select"))
    return next((kind for cls, kind in kinds if isinstance(field, cls)), "text")


def field_choices(field) -> tuple[str, ...]:
    """The values a field offers (static choices, AnyOf values), as strings."""
    values = []
    choices = getattr(field, "choices", None)
    if isinstance(choices, list | tuple):
        for choice in choices:
            values.append(str(choice[0] if isinstance(choice, tuple) else choice.value))
    for validator in field.validators:
        if isinstance(validator, AnyOf):
            values.extend(str(value) for value in validator.values)
    return tuple(values)


def spec_of(field) -> FieldSpec:
    """A FieldSpec read from a bound field and its validators."""
    ranges = [v for v in field.validators if isinstance(v, NumberRange)]
    lengths = [v for v in field.validators if isinstance(v, Length) and v.max >= 0]
    return FieldSpec(field.name, field_kind(field), field_choices(field),
                     low=ranges[0].min if ranges else None, high=ranges[0].max if ranges else None,
                     max_length=lengths[0].max if lengths else None)


def leaf_fields(form):
    """Every input field of a form, descending into FieldList and FormField entries."""
    for field in form:
        entries = getattr(field, "entries", None)
        subform = getattr(field, "form", None)
        if entries is not None:
            for entry in entries:
                yield from leaf_fields([entry])
        elif isinstance(subform, Form) and subform is not form:
            yield from leaf_fields(subform)
        else:
            yield field


def form_classes() -> set[type]:
    """Every WTForms class defined in the app (imported by create_app's blueprints)."""
    found, todo = set(), [Form]
    while todo:
        for cls in todo.pop().__subclasses__():
            todo.append(cls)
            if cls.__module__.startswith("webapp."):
                found.add(cls)
    return found


def reached_names(function, depth: int = 4):
    """Global objects a function's code refers to, following the app's own helpers."""
    seen, todo = set(), [(inspect.unwrap(function), depth)]
    while todo:
        func, left = todo.pop()
        if id(func) in seen:
            continue
        seen.add(id(func))
        codes = [func.__code__]
        while codes:
            code = codes.pop()
            codes.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
            for name in code.co_names:
                target = func.__globals__.get(name)
                yield target
                if (left and isinstance(target, types.FunctionType)
                        and target.__module__.startswith("webapp")):
                    todo.append((target, left - 1))


def introspected_fields(app) -> dict[str, dict[str, FieldSpec]]:
    """endpoint -> {name: FieldSpec} from the form classes each view reaches."""
    classes = form_classes()
    specs: dict[str, dict[str, FieldSpec]] = defaultdict(dict)
    with app.test_request_context():
        for endpoint, view in app.view_functions.items():
            for target in reached_names(view):
                if isinstance(target, type) and target in classes:
                    for field in leaf_fields(target(formdata=None, meta={"csrf": False})):
                        specs[endpoint][field.name] = spec_of(field)
    return specs


@dataclass(frozen=True)
class Value:
    """A value an input offers, and whether the untouched form sends it."""

    text: str
    sent: bool


class FormCollector(HTMLParser):
    """Collects, from one page, each form's targets (method, url) and its inputs' values, in
    document order (so the first value is what the browser would send untouched)."""

    def __init__(self, page_url: str):
        super().__init__(convert_charrefs=True)
        self.page_url = page_url
        self.found: list[tuple[str, str, dict[str, list[Value]]]] = []
        self._form: dict | None = None
        self._by_id: dict[str, dict] = defaultdict(lambda: defaultdict(list))
        self._select: tuple[dict, str] | None = None

    @staticmethod
    def targets(attrs: dict, default_method: str = "GET") -> set[tuple[str, str]]:
        """The (method, url) pairs an element sends to: htmx's, and the plain form's."""
        return {(method or default_method, attrs[attribute])
                for attribute, method in (("hx-post", "POST"), ("hx-get", "GET"),
                                          ("formaction", None), ("action", None))
                if attrs.get(attribute)}

    def handle_starttag(self, tag, attrs):
        """Track forms and inputs; elements outside a form that send count as one-field forms."""
        attrs = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.open_form(attrs)
            return
        name, value = attrs.get("name"), attrs.get("value", "")
        # An input outside its form joins it with form="id" (the brief's swap buttons do).
        fields = (self._by_id[attrs["form"]] if attrs.get("form")
                  else self._form["fields"] if self._form else None)
        if self._form is not None:
            self._form["targets"] |= self.targets(attrs, self._form["method"])
        if tag == "select" and name and fields is not None:
            self._select = (fields, name)
        if tag == "option" and self._select:
            # A select sends its selected option, or else its first.
            options = self._select[0][self._select[1]]
            options.append(Value(value, "selected" in attrs or not options))
        elif tag in ("input", "textarea", "button") and name and fields is not None:
            # What an untouched form sends: not a button, nor an unticked box.
            ticked = attrs.get("type") not in ("checkbox", "radio") or "checked" in attrs
            fields[name].append(Value(value, tag != "button" and ticked))
        elif fields is None:
            # A link or an htmx element outside a form: its query string is its form.
            links = {("GET", attrs["href"])} if tag == "a" and attrs.get("href") else set()
            for target in self.targets(attrs) | links:
                self.found.append((*target, {name: [Value(value, True)]} if name else {}))

    def open_form(self, attrs: dict) -> None:
        """Start a form (its fields are shared with inputs that name it by id)."""
        method = "POST" if attrs.get("method", "").lower() == "post" else "GET"
        fields = self._by_id[attrs["id"]] if attrs.get("id") else defaultdict(list)
        self._form = {"method": method, "fields": fields,
                      "targets": self.targets(attrs, method) or {(method, self.page_url)}}

    def handle_endtag(self, tag):
        """Close a form: record its fields under each of its targets."""
        if tag == "select":
            self._select = None
        if tag == "form" and self._form is not None:
            for method, url in self._form["targets"]:
                self.found.append((method, url, self._form["fields"]))
            self._form = None


def endpoint_of(app, method: str, url: str) -> tuple[str | None, dict[str, list[str]]]:
    """The endpoint a form target reaches, and the fields its query string carries."""
    parts = urlsplit(url)
    query = defaultdict(list)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key].append(value)
    try:
        endpoint, _ = app.url_map.bind("localhost").match(parts.path, method)
    except (HTTPException, RequestRedirect):
        return None, query
    return endpoint, query


def first_page(client, candidates: list[str], headers: dict) -> tuple[str, str]:
    """The first candidate URL that answers 200, with its HTML ("" when none or not HTML)."""
    for url in candidates:
        with client.get(url, headers=headers) as response:  # covers stream from their files
            if response.status_code == 200:
                html = response.mimetype == "text/html" and response.get_data(as_text=True)
                return url, html or ""
    return "", ""


def rendered_fields(app, client, pages: list[tuple[bool, list[str]]]):
    """endpoint -> {field name: values seen} from the forms and links on the pages, and on
    the pages their GET forms (sent untouched) and links with a query string lead to (a
    brief's form leads to its proposals and their swap buttons), two of each per endpoint."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    followed: dict[str, list[str]] = defaultdict(list)
    for row_page, candidates in pages:
        # A row's edit form only shows in its fragment (the whole page may not list that row).
        for headers in ({}, {"HX-Request": "true"}) if row_page else ({},):
            page, html = first_page(client, candidates, headers)
            for endpoint, url in harvest(app, page, html, found):
                if len(followed[endpoint]) < 2 and url not in followed[endpoint]:
                    followed[endpoint].append(url)
    for urls in followed.values():
        for url in urls:
            harvest(app, *first_page(client, [url], {}), found)
    return found


def harvest(app, page: str, html: str, found) -> list[tuple[str, str]]:
    """Add the fields of ``html``'s forms and links to ``found``; return the (endpoint, url) of
    its GET links with a query string, and of its GET forms as sent untouched."""
    collector = FormCollector(page)
    collector.feed(html)
    follow = []
    for method, url, fields in collector.found:
        endpoint, query = endpoint_of(app, method, url)
        if endpoint is None:
            continue
        for name, values in fields.items():
            found[endpoint][name] |= {value.text for value in values}
        for name, values in query.items():
            found[endpoint][name] |= set(values)
        if method == "GET" and fields:  # the form as sent untouched
            defaults = urlencode([(name, value.text) for name, values in fields.items()
                                  for value in values if value.sent])
            follow.append((f"{endpoint} form", f"{url}{'&' if '?' in url else '?'}{defaults}"))
        elif method == "GET" and query:
            follow.append((f"{endpoint} link", url))
    return follow


def merge_fields(introspected, rendered) -> dict[str, tuple[FieldSpec, ...]]:
    """The fields of every endpoint: the class's spec, with the values the pages offer."""
    merged = {}
    for endpoint in set(introspected) | set(rendered):
        specs = dict(introspected.get(endpoint, {}))
        for name, values in rendered.get(endpoint, {}).items():
            known = specs.get(name, FieldSpec(name, "text"))
            seen = tuple(sorted(value for value in values if value not in known.choices))
            specs[name] = FieldSpec(known.name, known.kind, known.choices + seen, known.low,
                                    known.high, known.max_length)
        merged[endpoint] = tuple(specs[name] for name in sorted(specs))
    return merged


# --- Seeded rows for URL arguments ------------------------------------------------------------


def arg_sources():
    """URL argument -> the columns its seeded values come from (several meanings share a name)."""
    from webapp.auth.models import User
    from webapp.auth.tokens import ApiToken
    from webapp.gifts.models import (
        Client,
        Gift,
        GiftLine,
        ImportProfile,
        Item,
        ItemImport,
        Label,
        LabelDecision,
        LabelGroup,
        Rule,
    )
    from webapp.pizzeria.import_models import ImportBatch
    from webapp.pizzeria.models import Night
    from webapp.registry import ModelVersion
    from webapp.tavern.models import CatalogueImport, Game, GameplayStyle

    return {
        "user_id": [select(User.id).where(User.username.not_in(FUZZERS.values()))],
        "token_id": [select(ApiToken.id)],
        "night_id": [select(Night.id)], "game_id": [select(Game.id)],
        "style_id": [select(GameplayStyle.id)], "item_id": [select(Item.id)],
        "rule_id": [select(Rule.id)], "group_id": [select(LabelGroup.id)],
        "label_id": [select(Label.id)], "profile_id": [select(ImportProfile.id)],
        "decision_id": [select(LabelDecision.id)], "client_id": [select(Client.id)],
        "gift_id": [select(Gift.id)], "line_id": [select(GiftLine.id)],
        "batch_id": [select(ImportBatch.id), select(LabelDecision.batch_id)],
        "import_id": [select(ItemImport.id), select(CatalogueImport.id)],
        "name": [select(Game.cover_filename)],
        "kind": [select(ModelVersion.kind)], "version": [select(ModelVersion.version)],
    }


def arg_pairs():
    """URL arguments that must agree with each other to reach a row (a line of its gift)."""
    from webapp.gifts.models import GiftLine
    from webapp.registry import ModelVersion

    return {("gift_id", "line_id"): select(GiftLine.gift_id, GiftLine.id),
            ("kind", "version"): select(ModelVersion.kind, ModelVersion.version)}


def seeded_values(app) -> tuple[dict[str, list], dict[tuple[str, ...], list[tuple]]]:
    """The current values of every URL argument (up to 40 each), and of the paired ones."""
    per_arg, pairs = {}, {}
    with app.app_context():
        for arg, queries in arg_sources().items():
            values = set()
            for query in queries:
                values |= {value for value in db.session.scalars(query.distinct().limit(40))
                           if value is not None}
            per_arg[arg] = sorted(values, key=str)
        for names, query in arg_pairs().items():
            pairs[names] = [tuple(row) for row in db.session.execute(query.limit(40))]
        db.session.remove()
    return per_arg, pairs


# --- Value strategies -------------------------------------------------------------------------

PAYLOADS = (
    "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "{{7*7}}", "${7*7}",
    "=cmd|' /C calc'!A0", "=HYPERLINK(\"http://evil\")", "+1+1", "-1+1", "@SUM(1)", "\t=1",
    "\x00", "a\x00b", "\r\n", "\x1b[31m", " ", "", "%", "_", "%%_", "\\",
    "NaN", "nan", "sNaN", "-sNaN", "NaN123", "inf", "-inf", "Infinity", "1e400", "-1e400",
    "1e-400", "1E+999999999", "-0", "0", "-1", "1" * 400, "9" * 20, "-9223372036854775809",
    "9223372036854775808", "18446744073709551616", "0x1F", "1_000", "1,5", "٣", "١٢٣", "１２３",
    "½", "Ⅻ", "²", "①", "𝟗", "\u202eevil\u202c", "\u200b", "\ufeff", "😀",
    "\U0001f9d1\u200d\U0001f4bb", "\U000e0001", "\U0010fffd", "\ufdfa", "İ", "ß", "ǅ",
    "null", "None", "true", "[]", "{}",
    "%s%s%n", "' OR '1'='1", "'; DROP TABLE users; --", "../../../../etc/passwd", "(a+)+$",
    "(", "[", "*", "a{99999999}", "(?P<x>", "2024-02-30", "0000-00-00", "9999-12-31",
    "10000-01-01", "-2024-01-01", "2024-13-01", "1970-01-01T00:00:00Z", "0001-01-01",
    "99999999999-01", "2024-99999999999", "2024-1", "2024-٠١",
)
HOSTILE_INTS = (0, -1, 2**31, 2**63, 2**64, 10**30)
#: Any character but NUL, which hypothesis draws so often that every sixth request was refused
#: at the door for it (400; PAYLOADS still sends NULs), and lone surrogates, which no request
#: can carry (UTF-8 cannot encode them).
ODD_TEXT = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
#: The longest value put in a query string. Servers refuse longer request lines anyway
#: (gunicorn: 4,094 bytes), and decoding megabytes of %-escapes was most of the run time.
QUERY_VALUE_MAX = 2_000


def huge_strings(sizes: tuple[int, ...]):
    """Long strings of one repeated character (plain, accented, emoji, RTL, markup)."""
    return st.builds(lambda char, size: char * size,
                     st.sampled_from(["a", "9", "é", "😀", "\u202e", "<", " ", "\U0010fffd"]),
                     st.sampled_from(sizes))


def weighted(*choices):
    """One of the strategies, each ``(weight, strategy)`` drawn in proportion to its weight."""
    picks = [index for index, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(picks).flatmap(lambda index: choices[index][1])


#: Numbers as text: signed, enormous, NaN, infinities, exponents (PAYLOADS has the decimal
#: spellings: sNaN, 1E+999999999...).
HOSTILE_NUMBERS = st.one_of(st.integers(-2**80, 2**80).map(str),
                            st.floats(allow_nan=True, allow_infinity=True).map(str))


def hostile_text(longest: int):
    """Anything a browser (or an attacker) could put in a field; long ones now and then (a
    100,000-character value costs megabytes of encoding and parsing)."""
    sizes = tuple(size for size in (300, 2_000, 100_000) if size <= longest)
    return weighted((4, st.sampled_from(PAYLOADS)), (3, st.text(ODD_TEXT, max_size=40)),
                    (3, HOSTILE_NUMBERS), (1, huge_strings(sizes)))


#: Hostile values for a form body, and for a query string.
HOSTILE = {"body": hostile_text(100_000), "query": hostile_text(QUERY_VALUE_MAX)}


def number_range(spec: FieldSpec, default: tuple[float, float]) -> tuple[float, float]:
    """The field's range, widened by one on each side (both edges and just past them)."""
    low = spec.low if spec.low is not None else default[0]
    high = spec.high if spec.high is not None else default[1]
    return low - 1, high + 1


@functools.cache
def plausible_value(spec: FieldSpec):
    """A value the field could accept, so validation passes and the service runs."""
    offered = st.sampled_from(spec.choices) if spec.choices else None
    if spec.kind == "int":
        low, high = number_range(spec, (-10, 10**6))
        plain = st.integers(int(low), int(high)).map(str)
    elif spec.kind == "decimal":  # drawn as cents: st.decimals is several times slower
        low, high = number_range(spec, (0, 10_000))
        plain = st.integers(int(low * 100), int(high * 100)).map(
            lambda cents: str(Decimal(cents).scaleb(-2)))
    elif spec.kind == "date":
        plain = st.dates(date(1990, 1, 1), date(2040, 12, 31)).map(date.isoformat)
    elif spec.kind == "bool":
        plain = st.sampled_from(["y", "on", "1", "true", "false", ""])
    elif offered is not None:
        return offered
    else:
        limit = min(spec.max_length or 40, 40)
        plain = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]),
                        min_size=1, max_size=limit)
    return st.one_of(offered, plain) if offered is not None else plain


def field_value(spec: FieldSpec, where: str):
    """Half plausible, half hostile."""
    return st.one_of(plausible_value(spec), HOSTILE[where])


def demo_bytes(name: str) -> bytes:
    """One of the demo data files."""
    return (DEMO_DATA / name).read_bytes()


def xlsx_bytes(rows: list[list]) -> bytes:
    """A small XLSX workbook holding ``rows``."""
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


GIFT_ITEM_FIELDS = ("name", "unit_price", "vendor", "category", "description", "sku")
GIFT_ITEMS_CSV = (b"name,price,vendor,category,description,sku\n"
                  b"Fuzz mug,9.99,Acme,Kitchen,A mug,FZ-1\n"
                  b"=cmd|' /C calc'!A0,12.50,Acme,Office,Formula,FZ-2\n")
SAMPLE_FILES = (
    demo_bytes("pizzeria_nightly.csv"), demo_bytes("pizzeria_pos_export.csv"),
    demo_bytes("pizzeria_reservations_export.csv"), demo_bytes("gamedrop_gameplays.csv"),
    GIFT_ITEMS_CSV, xlsx_bytes([["name", "price"], ["=cmd|' /C calc'!A0", 1.5], ["Mug", "NaN"]]),
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40,
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40,
    b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 40,
    b"PK\x03\x04" + b"\x00" * 60, b"", b"\xef\xbb\xbf", b"a,a,a\n1,2,3\n",
)


def mutated(content: bytes):
    """A sample file cut short, re-encoded, or with a formula or a NUL spliced in."""
    cut = st.integers(0, max(len(content), 1)).map(lambda end: content[:end])
    spliced = st.tuples(st.integers(0, len(content)), st.sampled_from(
        [b"=cmd|' /C calc'!A0", b"\x00", b"\"", b"\n\n,,,\n", b"\xff\xfe", "é".encode("latin-1")])
    ).map(lambda pick: content[:pick[0]] + pick[1] + content[pick[0]:])
    recoded = st.sampled_from(["utf-16", "latin-1", "utf-8-sig", "cp1252"]).map(
        lambda codec: content.decode("utf-8", "replace").encode(codec, "replace"))
    return st.one_of(st.just(content), cut, spliced, recoded)


#: A file just over the smallest upload limit (covers: 2 MB), and one over every limit but the
#: gift import's (30 MB); rare, as each costs megabytes of parsing.
BIG_FILES = (b"a,1\n" * (1 << 19) + b"x", b"a,1\n" * (11 << 18))
#: Arbitrary bytes, real files damaged, or a file over the upload limits.
FILE_CONTENT = weighted((6, st.binary(max_size=2_000)),
                        (13, st.sampled_from(SAMPLE_FILES).flatmap(mutated)),
                        (1, st.sampled_from(BIG_FILES)))
FILENAMES = ("x.csv", "x.txt", "x.xlsx", "cover.png", "photo.jpeg", "x.webp", "x.CSV", ".csv",
             "x.csv.exe", "x.exe", "../../etc/passwd", "..\\..\\boot.ini", "", " ",
             "a" * 300 + ".csv", "évil.csv", "😀.png", "con.csv", "x;y.csv", "x\".csv",
             "a\x00b.csv")
#: (bytes, filename) for a file input.
FILE_VALUE = st.tuples(FILE_CONTENT, st.one_of(st.sampled_from(FILENAMES),
                                               st.text(ODD_TEXT, max_size=30)))
#: Keys no form expects (besides other forms' fields): FieldList indexes, odd names.
ODD_KEYS = ("conditions-99999-field", "conditions--1-op", "conditions-x-value", "csrf_token",
            "__proto__", "", "a" * 5_000, "\x00", "name[]", "id", "page", "version")


@functools.cache
def field_entries(spec: FieldSpec, where: str):
    """The (name, value) pairs one field contributes: none, one, or the name repeated."""
    if spec.kind == "file":
        value = FILE_VALUE if where == "body" else st.text(ODD_TEXT, max_size=30)  # its name
    else:
        value = field_value(spec, where)
    return st.one_of(st.just([]), value.map(lambda one: [(spec.name, one)]),
                     st.lists(value, min_size=2, max_size=3).map(
                         lambda many: [(spec.name, one) for one in many]))


def extra_keys(pool: tuple[str, ...], where: str):
    """Keys the form does not expect: other forms' fields, odd names, random text."""
    key = st.one_of(st.sampled_from(pool + ODD_KEYS), st.text(ODD_TEXT, max_size=20))
    return st.lists(st.tuples(key, HOSTILE[where]), max_size=3)


def form_data(fields: tuple[FieldSpec, ...], pool: tuple[str, ...], where: str = "body"):
    """All the (name, value) pairs of one request's body (or query string)."""
    parts = [field_entries(spec, where) for spec in fields]
    return st.tuples(*parts, extra_keys(pool, where)).map(
        lambda drawn: [pair for part in drawn for pair in part])


def int_arguments(rule) -> set[str]:
    """The URL arguments of ``rule`` declared ``<int:...>``."""
    return set(re.findall(r"<int(?:\([^)]*\))?:(\w+)>", rule.rule))


def path_values(rule, seeded: dict, pairs: dict):
    """Values for a rule's URL arguments: seeded rows (in agreement) or hostile values."""
    args, ints = tuple(sorted(rule.arguments)), int_arguments(rule)

    def one(arg):
        hostile = (st.sampled_from(HOSTILE_INTS) if arg in ints else
                   st.one_of(st.sampled_from(PAYLOADS[:40]),
                             st.text(ODD_TEXT, min_size=1, max_size=40)))
        known = seeded.get(arg) or []
        return weighted((3, st.sampled_from(known)), (1, hostile)) if known else hostile

    independent = st.fixed_dictionaries({arg: one(arg) for arg in args})
    agreeing = [st.sampled_from(pairs[names]).map(
        lambda row, names=names: dict(zip(names, row, strict=True)))
        for names in pairs if set(names) == set(args) and pairs[names]]
    return st.one_of(*agreeing, independent) if agreeing else independent


# --- The app, its data and its fuzzing clients ------------------------------------------------


def log_in(client, role: str) -> None:
    """Log ``client`` in as the fuzzing account of ``role``."""
    response = client.post("/login", data={"username": FUZZERS[role],
                                           "password": TEST_PASSWORD})
    assert response.status_code in (302, 303), response.status_code


def seed(app, client) -> None:
    """The demo data (every model trained), plus what the demo lacks, made through the app's
    own forms: imports of all three kinds (one gift import left at its mapping step), a
    mapping profile, a cover, a bulk-label batch and an API token."""
    result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        for role, username in FUZZERS.items():
            make_user(username, role)
    log_in(client, "admin")
    posted = [
        multipart(client, "/pizzeria/import", {
            "mode": "nightly", "nightly": (demo_bytes("pizzeria_nightly.csv"), "n.csv")}),
        multipart(client, "/tavern/import", {
            "games": (demo_bytes("gamedrop_gameplays.csv")[:2_000], "games.csv")}),
        client.post(gift_import(client), data={
            **{f"column_{i}": field for i, field in enumerate(GIFT_ITEM_FIELDS)},
            "on_duplicate": "skip", "profile_name": "Fuzz partner", "profile_source": "CSV"}),
        client.post("/admin/users/tokens", data={"username": "admin", "label": "fuzz"}),
    ]
    gift_import(client)  # stays at the mapping step
    seeded = seeded_values(app)[0]
    posted += [
        multipart(client, f"/tavern/games/{seeded['game_id'][0]}/cover",
                  {"cover": (SAMPLE_FILES[6], "c.png")}),
        client.post("/gifts/items/bulk?q=mug", data={"label_id": seeded["label_id"][0],
                                                     "confirm": "1"}),
    ]
    assert all(response.status_code < 400 for response in posted), [
        (response.request.path, response.status_code) for response in posted]


def gift_import(client) -> str:
    """Upload the gift items file; the URL of its mapping step."""
    response = multipart(client, "/gifts/import", {
        "upload": (GIFT_ITEMS_CSV, "items.csv"), "on_duplicate": "skip", "profile": ""})
    assert response.status_code == 303, response.status_code
    return response.headers["Location"]


def multipart(client, url: str, fields: dict, **kwargs):
    """POST ``fields`` as multipart, encoded in memory ((bytes, name) tuples are files).

    The test client would spool a big body to a temporary file it never closes (a
    ResourceWarning, which is an error here).
    """
    encoded = {name: FileStorage(io.BytesIO(value[0]), value[1]) if isinstance(value, tuple)
               else value for name, value in fields.items()}
    return multipart_pairs(client, url, list(encoded.items()), **kwargs)


def multipart_pairs(client, url: str, pairs: list, method: str = "POST", **kwargs):
    """Send ``pairs`` (repeated names allowed) as a multipart body; the response is read."""
    boundary, body = encode_multipart(MultiDict(pairs))
    return read(client.open(url, method=method, data=body,
                            content_type=f"multipart/form-data; boundary={boundary}", **kwargs))


def read(response):
    """Read the whole body and close the response (some stream from files or the database)."""
    response.get_data()
    response.close()
    return response


def get_pages(app, seeded: dict, pairs: dict) -> list[tuple[bool, list[str]]]:
    """For every fuzzed GET route: whether it takes URL arguments, and candidate URLs with
    seeded ones (agreeing ones first)."""
    pages = []
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or not is_fuzzed(rule):
            continue
        args = tuple(sorted(rule.arguments))
        candidates = [dict(zip(names, row, strict=True)) for names in pairs
                      if set(names) == set(args) for row in pairs[names][:3]]
        candidates += [{arg: seeded[arg][i % len(seeded[arg])] for arg in args}
                       for i in range(5 if args else 1) if all(seeded.get(arg) for arg in args)]
        urls = [adapter.build(rule.endpoint, values) for values in candidates[:5]]
        pages.append((bool(args), urls))
    return pages


@pytest.fixture(scope="module")
def fuzz(database_url, tmp_path_factory, request):
    """The app with demo data, logged-in clients per role, and the fields of every route."""
    folder = tmp_path_factory.mktemp("form-fuzz")
    config = base_test_config(database_url, folder)
    config.update(WTF_CSRF_ENABLED=False, COVER_FOLDER=str(folder / "covers"),
                  GIFTS_IMPORT_FOLDER=str(folder / "imports"),
                  # Production's refresh intervals: 0 s would rebuild the gift catalogue on
                  # every proposal, most of the run time for nothing (the data barely moves).
                  MODEL_CHECK_SECONDS=1.0, GIFTS_CATALOGUE_SECONDS=5.0)
    app = create_app(config)
    clients = {role: app.test_client() for role in FUZZERS}
    seed(app, clients["admin"])
    log_in(clients["staff"], "staff")
    fields = merge_fields(introspected_fields(app), rendered_fields(
        app, clients["admin"], get_pages(app, *seeded_values(app))))
    pool = tuple(sorted({spec.name for specs in fields.values() for spec in specs}))
    yield types.SimpleNamespace(app=app, clients=clients, fields=fields, pool=pool,
                                seeding_jobs=job_ids(app))
    report(request)
    tear_down_app(app)


def job_ids(app) -> set[str]:
    """The ids of every background job so far."""
    from webapp.jobs.models import Job

    with app.app_context():
        ids = set(db.session.scalars(select(Job.id)))
        db.session.remove()
    return ids


def report(request) -> None:
    """Print the cases sent and the statuses seen, past pytest's output capture."""
    if not CASES:
        return
    by_role = Counter()
    for (role, _, _), count in CASES.items():
        by_role[role] += count
    statuses = Counter()
    for counts in STATUSES.values():
        statuses.update(counts)
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"form fuzzing: {sum(CASES.values())} cases over {len(CASES)} route-roles "
                f"({', '.join(f'{role} {n}' for role, n in sorted(by_role.items()))}); "
                f"statuses {dict(sorted(statuses.items()))}")


# --- The fuzzing ------------------------------------------------------------------------------


def send(client, method: str, path: str, pairs: list, query: list, htmx: bool, as_multipart):
    """Send one generated request; files (tuples) force a multipart body."""
    headers = {"HX-Request": "true"} if htmx else {}
    if method == "GET":
        return read(client.open(path, method=method, query_string=MultiDict(query + pairs),
                                headers=headers))
    if as_multipart or any(isinstance(value, tuple) for _, value in pairs):
        files = [(name, FileStorage(io.BytesIO(value[0]), value[1])
                  if isinstance(value, tuple) else value) for name, value in pairs]
        return multipart_pairs(client, path, files, method=method,
                               query_string=MultiDict(query), headers=headers)
    return read(client.open(path, method=method, data=MultiDict(pairs),
                            query_string=MultiDict(query), headers=headers))


def short(value) -> str:
    """A value's repr, with a long one cut (a failure message must stay readable)."""
    if isinstance(value, tuple):  # a file
        return f"file({short(value[1])}, {len(value[0])} bytes: {value[0][:40]!r})"
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...({len(value)} chars)"


def describe(role, method, path, body, query, htmx, as_multipart) -> str:
    """One generated request, compactly, to reproduce a failure by hand."""
    pairs = ", ".join(f"{short(name)}: {short(value)}" for name, value in body)
    args = ", ".join(f"{short(name)}: {short(value)}" for name, value in query)
    return (f"{role} {method} {short(path)} htmx={htmx} multipart={as_multipart}\n"
            f"  body [{pairs}]\n  query [{args}]")


def assert_acceptable(response, case: str) -> None:
    """2xx, 3xx, or 4xx with a body; never a 5xx."""
    body = response.get_data()
    assert response.status_code < 500, (
        f"{case}\nanswered {response.status_code}:\n{body.decode('utf-8', 'replace')[:3000]}")
    if response.status_code >= 400:
        assert body.strip(), f"{case}\n{response.status_code} with an empty body"


def client_for(fuzz, role: str, endpoint: str):
    """The logged-in client, or a fresh anonymous one for login and logout (which would log
    the fuzzer out, or in as someone else)."""
    if endpoint.startswith("auth."):
        return fuzz.app.test_client()
    return fuzz.clients[role]


def test_every_url_argument_has_seeded_rows(fuzz):
    seeded, pairs = seeded_values(fuzz.app)
    used = {arg for rule in fuzz.app.url_map.iter_rules() if is_fuzzed(rule)
            for arg in rule.arguments}
    assert used <= set(seeded), f"add these URL arguments to arg_sources: {used - set(seeded)}"
    assert all(seeded[arg] for arg in used), {arg: seeded[arg] for arg in used}
    assert all(pairs.values())


def test_the_fields_come_from_the_forms_and_the_pages(fuzz):
    names = {endpoint: {spec.name for spec in specs} for endpoint, specs in fuzz.fields.items()}
    # From the classes: the nights form, with its types and ranges.
    reservations = next(spec for spec in fuzz.fields["pizzeria.nights_create"]
                        if spec.name == "reservations")
    assert (reservations.kind, reservations.low, reservations.high) == ("int", 0, 10_000)
    # From the pages only: the gift import's column selects, the edit form's hidden version.
    assert any(name.startswith("column_") for name in names["gifts.import_mapping_save"])
    assert "version" in names["pizzeria.night_update"]
    assert {"nightly", "mode"} <= names["pizzeria.import_start"]
    # From a page a GET form leads to: the brief's proposals, with their swap and lock buttons.
    assert {"swap", "toggle_lock"} <= names["gifts.brief_proposals"]
    # Every POST route but a few plain buttons has fields to fuzz.
    unknown = [endpoint for endpoint, method in fuzzed_routes(fuzz.app)
               if method == "POST" and not names.get(endpoint)]
    assert len(unknown) <= 5, unknown  # now: activate and roll back a model version


# --- Regressions: what the fuzzing found ---------------------------------------------------

#: Numbers no id can be: past PostgreSQL's INTEGER ("integer out of range"), past SQLite's
#: 64 bits (OverflowError), and past what float() takes (WTForms' NumberRange converts to
#: float to test for NaN; a signalling NaN, "sNaN", cannot even be converted).
PAST_32_BITS, PAST_64_BITS, PAST_FLOAT = str(2**31), "9" * 20, "9" * 400
PAST_ID = [pytest.param(PAST_32_BITS, id="32-bits"), pytest.param(PAST_64_BITS, id="64-bits")]
BRIEF = "budget_min=30&budget_max=60&recipients=10"
RULE_CONDITION = ('{"match": "all", "conditions": '
                  '[{"field": "name", "op": "contains", "value": "fuzz"}]}')
#: (method, url, form, the status expected): each was a 500 before its fix.
REGRESSIONS = [
    pytest.param("GET", f"/pizzeria/nights?page={PAST_64_BITS}", None, 200,
                 id="page-number-past-64-bits"),
    pytest.param("GET", f"/gifts/items?page={PAST_64_BITS}", None, 200,
                 id="items-page-number-past-64-bits"),
    pytest.param("GET", f"/pizzeria/nights?weekday={PAST_64_BITS}", None, 200,
                 id="weekday-filter-past-64-bits"),
    pytest.param("GET", "/pizzeria/nights/summary?weekday=²", None, 200,
                 id="weekday-filter-a-digit-int-refuses"),
    pytest.param("GET", "/pizzeria/nights?month=99999999999-01", None, 200,
                 id="month-filter-year-past-date"),
    # The brief shows its errors with a 200: it is a page of proposals, not a form post.
    pytest.param("GET", "/gifts/brief?budget_min=sNaN&budget_max=60&recipients=10", None, 200,
                 id="brief-budget-min-signalling-nan"),
    pytest.param("GET", "/gifts/brief?budget_min=30&budget_max=sNaN&recipients=10", None, 200,
                 id="brief-budget-max-signalling-nan"),
    pytest.param("GET", "/gifts/items?price_min=-sNaN", None, 200,
                 id="item-filter-price-signalling-nan"),
    pytest.param("GET", "/gifts/items?price_max=1E%2B999999999", None, 200,
                 id="item-filter-price-past-numeric"),
    pytest.param("GET", f"/gifts/brief?{BRIEF}&toggle_lock=0", None, 200,
                 id="brief-lock-of-no-item"),
    pytest.param("POST", "/gifts/brief/settings", {"learned_weight": "sNaN", "min_gifts": "20"},
                 422, id="recommender-weight-signalling-nan"),
    pytest.param("POST", "/gifts/labels/settings", {"min_labels_per_label": PAST_FLOAT,
                                                    "random_share": "0.1"}, 422,
                 id="integer-past-float"),
    pytest.param("POST", "/pizzeria/nights", {"date": "2031-01-01", "doughs": PAST_FLOAT}, 422,
                 id="night-doughs-past-float"),
]


@pytest.mark.parametrize(("method", "url", "data", "status"), REGRESSIONS)
def test_input_the_fuzzing_found_is_refused_or_ignored(fuzz, method, url, data, status):
    response = read(fuzz.clients["admin"].open(url, method=method, data=data))
    assert_acceptable(response, f"{method} {url}")
    assert response.status_code == status


#: (method, url, form, the status expected) with ``{n}`` for a number no id can be.
ID_REGRESSIONS = [
    pytest.param("GET", "/gifts/items?has_label={n}", None, 200, id="item-filter-label-id"),
    pytest.param("GET", f"/gifts/brief/proposals?{BRIEF}&swap={{n}}", None, 200,
                 id="brief-swap"),
    pytest.param("GET", f"/gifts/brief?{BRIEF}&client_id={{n}}", None, 200, id="brief-client"),
    pytest.param("POST", "/tavern/picks", {"game_id": "{n}", "budget": "cheap"}, 422,
                 id="pick-game-id"),
]


@pytest.mark.parametrize("number", PAST_ID)
@pytest.mark.parametrize(("method", "url", "data", "status"), ID_REGRESSIONS)
def test_an_id_no_row_can_have_is_refused_or_ignored(fuzz, method, url, data, status, number):
    url = url.format(n=number)
    data = {key: value.format(n=number) for key, value in (data or {}).items()}
    response = read(fuzz.clients["admin"].open(url, method=method, data=data))
    assert_acceptable(response, f"{method} {url}")
    assert response.status_code == status


@pytest.mark.parametrize("number", PAST_ID)
def test_a_gift_saved_with_an_item_id_no_row_can_have_is_refused(fuzz, number):
    client_id = seeded_values(fuzz.app)[0]["client_id"][0]
    response = read(fuzz.clients["admin"].post("/gifts/brief/save", data={
        "budget_min": "30", "budget_max": "60", "recipients": "10", "client_id": client_id,
        "name": "Fuzzed", "lines": f"{number}:1"}))
    assert response.status_code == 422 and b"could not be saved" in response.data


def test_a_gift_budget_of_signalling_nan_is_refused(fuzz):
    gift_id = seeded_values(fuzz.app)[0]["gift_id"][0]
    response = read(fuzz.clients["admin"].post(f"/gifts/gifts/{gift_id}", data={
        "name": "Fuzzed", "status": "draft", "recipients": "10", "budget_max": "sNaN"}))
    assert response.status_code == 422


def test_a_month_filter_lists_only_months_with_nights(fuzz):
    """One night typed as year 1 made the month select list 120,000 months."""
    from webapp.pizzeria import service

    response = read(fuzz.clients["admin"].post("/pizzeria/nights", data={"date": "0001-01-01"}))
    assert response.status_code in (201, 303, 422)  # 422 if a fuzzed night holds the date
    with fuzz.app.test_request_context():
        months = service.months_with_nights()
        assert "0001-01" in months and len(months) < 1_000


# Found by the fuzzing in files owned elsewhere: these fail until the fix each names is made.


def test_an_id_no_row_can_have_in_the_url_is_404_not_500(fuzz):
    """PostgreSQL refuses to compare 2**31 with an INTEGER id, SQLite to bind 2**63: the ``int``
    URL converter must refuse them (webapp/__init__.py: register an IntegerConverter subclass
    with ``max=MAX_ID`` as ``int`` before the blueprints)."""
    for url in ("/pizzeria/nights/9223372036854775808", "/gifts/rules/18446744073709551616/edit",
                f"/tavern/games/{PAST_32_BITS}/edit", f"/gifts/clients/{PAST_32_BITS}"):
        response = read(fuzz.clients["admin"].get(url))
        assert response.status_code == 404, (url, response.status_code)


def test_an_anonymous_htmx_request_gets_a_message_with_its_401(fuzz):
    """The 401 asking htmx to go to the login page had an empty body (webapp/auth/roles.py)."""
    response = read(fuzz.app.test_client().post("/logout", headers={"HX-Request": "true"}))
    assert response.status_code == 401 and response.headers["HX-Redirect"]
    assert response.get_data(as_text=True).strip()


def test_a_multipart_field_named_with_a_line_break_is_not_a_server_error(fuzz):
    """Werkzeug reads such a part's name as None, and WTForms' FieldList (the rule builder's
    conditions) calls None.startswith (webapp/gifts/rules_views.py)."""
    response = multipart_pairs(fuzz.clients["admin"], "/gifts/rules",
                               [("name", "Fuzzed"), ("priority", "1"), ("a\r\nb", "x")])
    assert_acceptable(response, "POST /gifts/rules")


@pytest.mark.parametrize(("method", "url", "data"), [
    pytest.param("GET", "/tavern/games?q=a%00b", None, id="catalogue-search"),
    pytest.param("GET", "/gifts/import/a%00b", None, id="import-id-in-the-path"),
    pytest.param("POST", "/gifts/labels/groups", {"name": "a\x00b"}, id="label-group-name"),
    pytest.param("POST", "/pizzeria/nights", {"date": "2031-02-03", "event_note": "a\x00b"},
                 id="night-event-note"),
])
def test_a_nul_character_in_any_field_is_refused_on_every_database(fuzz, method, url, data):
    """PostgreSQL refuses NUL in text (psycopg DataError: a 500) where SQLite stores it. Refuse
    it in every form and query value with a 400, the same on both (webapp/__init__.py: a
    ``before_request`` hook; see the report of the form fuzzing)."""
    response = read(fuzz.clients["admin"].open(url, method=method, data=data))
    assert_acceptable(response, f"{method} {url}")
    assert response.status_code == 400 and b"NUL" in response.data


@pytest.mark.parametrize(("url", "fields"), [
    ("/gifts/import", {"upload": (b"name,price\nFuzzed,1\n", "a\x00b.csv"),
                       "on_duplicate": "skip", "profile": ""}),
    ("/tavern/import", {"games": (b"name,price\nFuzzed,1\n", "a\x00b.csv")}),
], ids=["gift-import", "catalogue-import"])
def test_an_upload_named_with_a_nul_is_not_a_server_error(fuzz, url, fields):
    """The file's name is stored with the import: PostgreSQL refuses its NUL (a 500). The
    NUL check before each request skips uploads; it should look at their names too."""
    response = multipart(fuzz.clients["admin"], url, fields)
    assert_acceptable(response, f"POST {url}")


@pytest.mark.parametrize("number", PAST_ID)
def test_a_queue_decision_with_a_label_id_no_row_can_have_is_refused(fuzz, number):
    """The ticked label ids go to SQL unchecked (webapp/gifts/labelling.py ``_chosen_labels``:
    refuse an id past ``MAX_ID`` with its LabellingError, as for an unknown id)."""
    from webapp.gifts.models import Item

    with fuzz.app.app_context():
        item_id = db.session.scalar(select(Item.id).where(Item.status == "pending").limit(1))
        db.session.remove()
    url = f"/gifts/queue/items/{item_id}/decide"
    response = read(fuzz.clients["admin"].post(url, data={"action": "edit",
                                                          "label_ids": number}))
    assert_acceptable(response, f"POST {url}")
    assert response.status_code == 422


@pytest.mark.parametrize("data", [
    pytest.param({"name": "Fuzzed", "priority": PAST_FLOAT}, id="priority-past-float"),
    pytest.param({"name": "Fuzzed", "priority": "1", "condition": RULE_CONDITION,
                  "labels": PAST_32_BITS}, id="restored-label-id-past-32-bits"),
    pytest.param({"name": "Fuzzed", "priority": "1", "condition": RULE_CONDITION,
                  "labels": PAST_64_BITS}, id="restored-label-id-past-64-bits"),
    pytest.param({"name": "Fuzzed", "priority": "1", "condition": "[" * 100_000},
                 id="restored-condition-nested-past-the-recursion-limit"),
])
def test_a_rule_with_hostile_numbers_or_json_is_refused(fuzz, data):
    """The rule forms' priority is WTForms' IntegerField (use webapp.fields.IntegerField, and
    bound the restored one), and the restored condition is parsed with json.loads, which
    raises RecursionError on deep nesting (webapp/gifts/rules_views.py)."""
    rule_id = seeded_values(fuzz.app)[0]["rule_id"][0]
    url = "/gifts/rules" if "condition" not in data else f"/gifts/rules/{rule_id}/restore"
    response = read(fuzz.clients["admin"].post(url, data=data))
    assert_acceptable(response, f"POST {url}")
    assert response.status_code == 422


# A failing case is replayed with its repr, which for a 100 kB value warns (an error here) and
# would hide the failure itself.
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@pytest.mark.parametrize(("role", "endpoint", "method"), ROUTES)
def test_every_form_answers_hostile_input_without_a_server_error(fuzz, role, endpoint, method):
    rule = next(rule for rule in fuzz.app.url_map.iter_rules(endpoint)
                if method in rule.methods)
    # Fresh: the rows made by earlier routes count, and a row deleted by one is not asked for
    # (a deletion route may have used them all up: it then gets hostile ids only).
    seeded, pairs = seeded_values(fuzz.app)
    fields = fuzz.fields.get(endpoint, ())
    adapter = fuzz.app.url_map.bind("localhost")
    client = client_for(fuzz, role, endpoint)
    query_fields = tuple(spec for spec in fields if spec.kind != "file")[:4]

    # No shrinking: each case is a real request (shrinking a 100 kB case took minutes), and the
    # failure message below names the request compactly instead of hypothesis's full repr.
    @settings(max_examples=examples(role, endpoint),
              deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=(Phase.explicit, Phase.generate), verbosity=Verbosity.quiet,
              report_multiple_bugs=False)
    @given(values=path_values(rule, seeded, pairs),
           body=form_data(fields, fuzz.pool, "query" if method == "GET" else "body"),
           query=form_data(query_fields, (), "query"),
           # Mostly as htmx sends it (the app's usual traffic, and cheaper fragments).
           htmx=st.sampled_from([True, True, False]), as_multipart=st.booleans())
    def fuzz_route(values, body, query, htmx, as_multipart):
        path = adapter.build(endpoint, values, method=method)
        query = query if method != "GET" else []
        case = describe(role, method, path, body, query, htmx, as_multipart)
        try:
            response = send(client, method, path, body, query, htmx, as_multipart)
        except Exception as error:  # re-raised, with the request that caused it
            raise AssertionError(f"{case}\nraised {type(error).__name__}: {error}") from error
        CASES[(role, endpoint, method)] += 1
        STATUSES[endpoint][response.status_code] += 1
        assert_acceptable(response, case)

    fuzz_route()
    # The fuzzer was still logged in at the end (else most cases only met the login redirect).
    if not endpoint.startswith("auth."):
        assert read(client.get("/")).status_code == 200


# --- The fuzzing is real ----------------------------------------------------------------------


def test_the_fuzzing_sent_enough_cases_and_reached_the_views(fuzz):
    if not CASES:
        skip_or_fail("the fuzzing tests did not run in this session")
    total = sum(CASES.values())
    if FULL_SIZE:
        assert total >= CASE_FLOOR, total
        assert {(p.values[0], p.values[1], p.values[2]) for p in ROUTES} <= set(CASES)
    # Most answers came from the views, not the router or the login wall.
    routed = sum(count for counts in STATUSES.values() for status, count in counts.items()
                 if status not in (302, 404, 405))
    assert routed > total / 2, dict(STATUSES)


def app_exceptions() -> set[str]:
    """The names of the exceptions the app raises on purpose (defined in ``webapp``/``ml``)."""
    found, todo = set(), [Exception]
    while todo:
        for cls in todo.pop().__subclasses__():
            todo.append(cls)
            if cls.__module__.startswith(("webapp.", "ml.")):
                found.add(cls.__name__)
    return found


def test_no_background_job_the_fuzzing_started_failed_unexpectedly(fuzz):
    """Imports, retrains and rule runs started by fuzzed requests may fail, but only with the
    app's own errors (a clear message), never with a crash such as an IntegrityError."""
    from webapp.jobs.models import Job

    if not CASES:
        skip_or_fail("the fuzzing tests did not run in this session")
    with fuzz.app.app_context():
        for job_id in job_ids(fuzz.app) - fuzz.seeding_jobs:
            wait_for_job(job_id, timeout=120)
        failed = db.session.execute(select(Job.kind, Job.error).where(
            Job.status == "failed", Job.id.not_in(fuzz.seeding_jobs))).all()
        db.session.remove()
    expected = app_exceptions()
    crashes = [(kind, error[:300]) for kind, error in failed
               if (error or "").partition(":")[0] not in expected]
    assert not crashes, crashes


def test_a_server_error_would_be_caught(fuzz):
    """The check itself can fail: a 500 and an empty 4xx are refused."""
    broken = fuzz.app.response_class("boom", status=500)
    with pytest.raises(AssertionError, match="answered 500"):
        assert_acceptable(broken, "POST /x")
    with pytest.raises(AssertionError, match="empty body"):
        assert_acceptable(fuzz.app.response_class("", status=422), "POST /x")


