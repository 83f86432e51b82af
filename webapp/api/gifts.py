"""``POST /api/v1/gifts/proposals``: up to three gift bundles for a brief, as JSON."""

from __future__ import annotations

import math

from flask import jsonify
from wtforms import Field
from wtforms.validators import Length, NumberRange, Optional

from ml import gifts as gifts_ml
from webapp.api import bp
from webapp.api.auth import roles_required
from webapp.api.errors import json_error
from webapp.api.forms import JsonForm, JsonIntegerField, JsonStringField, Present
from webapp.api.views import INVALID, json_object
from webapp.gifts import recommend as service
from webapp.gifts.brief_forms import OCCASION_GROUP, THEME_GROUP, exclusion_choices, labels_of

EXAMPLE = ('{"occasion": "onboarding", "budget": {"min": 40, "max": 80}, "recipients": 25, '
           '"themes": ["coffee"], "exclude": ["perishable"]}')
BUDGET_LIMIT = 100000


def is_number(value) -> bool:
    """A JSON number that is finite (not a boolean, a string, NaN or infinity)."""
    if isinstance(value, bool):
        return False
    # Python ints are exact at any size; math.isfinite would raise OverflowError on 10**400.
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


class BudgetField(Field):
    """``{"min": 40, "max": 80}``: the budget per recipient."""

    def process_formdata(self, valuelist) -> None:
        """Keep ``(min, max)`` when both are numbers with 0 <= min <= max; refuse the rest."""
        self.data = None
        if not valuelist:
            return
        value = valuelist[0]
        if not isinstance(value, dict) or not all(is_number(value.get(k)) for k in ("min", "max")):
            raise ValueError('Must be an object with numbers, like {"min": 40, "max": 80}.')
        # Compare before converting: float() of an integer beyond 1e308 raises OverflowError.
        low, high = value["min"], value["max"]
        if not 0 <= low <= high or high <= 0 or high > BUDGET_LIMIT:
            raise ValueError(f"Needs 0 <= min <= max, max above 0 and at most {BUDGET_LIMIT}.")
        self.data = (float(low), float(high))


class WordListField(Field):
    """A JSON array of strings (names of themes or exclusions)."""

    def process_formdata(self, valuelist) -> None:
        """Keep the list when every item is a short string."""
        self.data = []
        if not valuelist:
            return
        value = valuelist[0]
        if not isinstance(value, list) or not all(isinstance(v, str) and len(v) <= 100
                                                  for v in value) or len(value) > 50:
            raise ValueError('Must be a list of names, like ["coffee", "local"].')
        self.data = [v.strip() for v in value]


class ProposalRequest(JsonForm):
    """A client's brief."""

    occasion = JsonStringField(validators=[Optional(), Length(max=60)])
    budget = BudgetField(validators=[Present('Send the budget per recipient, like '
                                             '{"min": 40, "max": 80}.')])
    recipients = JsonIntegerField(validators=[Optional(), NumberRange(1, 100000)],
                                  invalid_value_message="Must be a whole number from 1.")
    themes = WordListField()
    exclude = WordListField()
    industry = JsonStringField(validators=[Optional(), Length(max=80)])


def unknown_words(form: ProposalRequest) -> dict[str, list[str]]:
    """Field errors for an occasion, theme or exclusion the vocabulary does not have."""
    errors: dict[str, list[str]] = {}
    if form.occasion.data and form.occasion.data not in labels_of(OCCASION_GROUP):
        errors["occasion"] = [f"Unknown occasion: {form.occasion.data}."]
    themes = set(labels_of(THEME_GROUP)) | set(gifts_ml.ATTRIBUTE_THEMES)
    unknown = [t for t in form.themes.data if t not in themes]
    if unknown:
        errors["themes"] = [f"Unknown theme: {t}." for t in unknown]
    allowed = {choice.value for choice in exclusion_choices()}
    allowed |= {value.partition(":")[2] for value in allowed}
    unknown = [w for w in form.exclude.data if w not in allowed]
    if unknown:
        errors["exclude"] = [f"Unknown label or attribute: {w}." for w in unknown]
    return errors


def bundle_json(bundle: gifts_ml.Bundle) -> dict:
    """A bundle as the API shows it."""
    return {"items": [{"id": line.item.id, "name": line.item.name, "vendor": line.item.vendor,
                       "category": line.item.category, "unit_price": round(line.item.price, 2),
                       "quantity": line.quantity, "labels": sorted(line.item.labels),
                       "reasons": list(line.reasons)} for line in bundle.lines],
            "cost_per_recipient": round(bundle.cost, 2), "reasons": list(bundle.reasons)}


@bp.post("/gifts/proposals")
@roles_required("staff")
def gift_proposals():
    """Up to three bundles for a brief; an infeasible brief is 200 with none and the reason."""
    payload = json_object()
    if payload is None:
        return json_error(422, f"Send a JSON object with Content-Type: application/json, "
                               f"like {EXAMPLE}.", fields={})
    form = ProposalRequest.from_json(payload)
    if not form.validate():
        return json_error(422, INVALID, fields=form.errors)
    errors = unknown_words(form)
    if errors:
        return json_error(422, INVALID, fields=errors)
    low, high = form.budget.data
    brief = gifts_ml.Brief(occasion=form.occasion.data or None, budget_min=low, budget_max=high,
                           recipients=form.recipients.data or 1, themes=tuple(form.themes.data),
                           exclude=tuple(form.exclude.data), industry=form.industry.data or None)
    proposed = service.propose(brief)
    service.record_event("shown", brief, proposed.proposal.bundles,
                         model_version=proposed.model_version)
    return jsonify(bundles=[bundle_json(b) for b in proposed.proposal.bundles],
                   explanation=proposed.proposal.explanation,
                   model={"kind": "gifts", "version": proposed.model_version,
                          "weight": proposed.learned_weight})
