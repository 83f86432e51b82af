"""Session-wide settings: hypothesis profiles, and under CI no test may be skipped."""

from __future__ import annotations

import os

from hypothesis import settings

from tests.support import running_in_ci

# Hypothesis profiles: "ci" under CI=true, "dev" otherwise; HYPOTHESIS_PROFILE=ci runs the CI
# load on a laptop. Both have no deadline (a request-tier example hits a database: its time is
# no property) and print the blob that reproduces a failure. "ci" replaces hypothesis's own
# "ci" profile, which would derandomize: here each CI run tries new cases. Property tests pin
# their own max_examples; the form fuzzing (tests/web/test_form_fuzz.py) sizes its run by the
# profile's name.
settings.register_profile("dev", deadline=None, print_blob=True)
settings.register_profile("ci", deadline=None, print_blob=True, database=None,
                          max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if running_in_ci() else "dev"))


def pytest_sessionfinish(session, exitstatus):
    """With ``CI=true``, a skipped test fails the run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if running_in_ci() and skipped and exitstatus == 0:
        reporter.write_line(f"CI=true: {skipped} test(s) were skipped; failing the run.", red=True)
        session.exitstatus = 1
