"""Session-wide guard: under CI no test may be skipped, so no tier can vanish silently."""

from __future__ import annotations

from tests.support import running_in_ci


def pytest_sessionfinish(session, exitstatus):
    """With ``CI=true``, a skipped test fails the run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if running_in_ci() and skipped and exitstatus == 0:
        reporter.write_line(f"CI=true: {skipped} test(s) were skipped; failing the run.", red=True)
        session.exitstatus = 1
