"""The OpenAPI description at /api/v1/openapi.json, and the API fuzzed against it (schemathesis).

Every API operation is called with thousands of generated bodies, valid and invalid, by a staff
token on an app holding the demo data (so every model is trained). Each answer must be no 5xx,
have a status, content type and body the spec documents. ``CI=true`` raises the number of cases
to at least 10,000 for the file; locally a few hundred per operation keep it quick.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import base_test_config, make_user, tear_down_app
from webapp import create_app
from webapp.api.openapi import SPEC
from webapp.auth import tokens

SPEC_URL = "/api/v1/openapi.json"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Examples per operation: the three POST operations make >= 10,200 cases under CI.
EXAMPLES = 3400 if CI else 300
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

#: Cases sent per operation by the fuzzing test, reported at the end of the module.
SENT: Counter[str] = Counter()


@pytest.fixture(scope="module")
def api_app(database_url, tmp_path_factory, request):
    """An app with the demo data (every model trained) for the whole module, emptied after."""
    config = base_test_config(database_url, tmp_path_factory.mktemp("api-schema"))
    # Production's refresh intervals: the data does not change here, and the test default (0 s)
    # would reload the whole gift catalogue on every proposal, a third of the file's run time.
    config.update(MODEL_CHECK_SECONDS=1.0, GIFTS_CATALOGUE_SECONDS=5.0)
    app = create_app(config)
    result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    yield app
    report_cases(request)
    tear_down_app(app)


def report_cases(request) -> None:
    """Print how many cases the fuzzing sent, past pytest's output capture."""
    if not SENT:
        return
    per_operation = ", ".join(f"{label}: {count}" for label, count in sorted(SENT.items()))
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"schemathesis: {sum(SENT.values())} cases ({per_operation})")


@pytest.fixture(scope="module")
def staff_headers(api_app):
    """The Authorization header of a staff user's token (staff may use every operation)."""
    with api_app.app_context():
        token = tokens.create_token(make_user("fuzz-staff", "staff"), "schemathesis")
    return {"Authorization": f"Bearer {token}"}


def api_routes(app) -> set[tuple[str, str]]:
    """(METHOD, path) for every route of the ``api`` blueprint."""
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("api.")
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def spec_operations(spec: dict) -> set[tuple[str, str]]:
    """(METHOD, path) for every operation in an OpenAPI document."""
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return {(method.upper(), path) for path, item in spec["paths"].items()
            for method in item if method in methods}


def test_the_spec_is_public_valid_openapi_and_lists_exactly_the_api_routes(api_app):
    response = api_app.test_client().get(SPEC_URL)  # no token
    assert response.status_code == 200 and response.is_json
    spec = response.get_json()
    assert spec == json.loads(json.dumps(SPEC))  # what the fuzzing below is generated from
    assert spec["openapi"].startswith("3.")
    # Loaded from the app, validated against the OpenAPI meta-schema (raises when invalid).
    schemathesis.openapi.from_wsgi(SPEC_URL, api_app).validate()
    assert spec_operations(spec) == api_routes(api_app)
    assert len(api_routes(api_app)) >= 4


def test_a_route_missing_from_the_spec_is_noticed(api_app):
    trimmed = {**SPEC, "paths": {path: item for path, item in SPEC["paths"].items()
                                 if "gifts" not in path}}
    assert spec_operations(trimmed) != api_routes(api_app)


def test_an_invalid_spec_fails_validation():
    broken = {**SPEC, "paths": {"/api/v1/x": {"post": {"responses": "none"}}}}
    with pytest.raises(Exception, match="responses|none"):
        schemathesis.openapi.from_dict(broken).validate()


# Built from the dict the app serves (checked equal above), not through a fixture:
# schemathesis.pytest.from_fixture sets Item._nodeid, which pytest 9.2 no longer has.
schema = schemathesis.openapi.from_dict(SPEC)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_answer_conforms_to_the_spec(case, api_app, staff_headers):
    SENT[case.operation.label] += 1
    case.call_and_validate(headers=staff_headers, checks=CHECKS, app=api_app)
