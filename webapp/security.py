"""Security headers on every response: a Content Security Policy and the browser switches.

A 20-line ``after_request`` hook rather than Flask-Talisman: Curate needs no nonces, no
per-view policy API and no HTTPS redirect (TLS ends at the proxy, see docs/deploy.md),
so a dependency would add more surface than it saves. Headers are set with ``setdefault``: a
view that sends its own, stricter policy keeps it (e.g. ``tavern.cover``'s sandbox).

What the policy allows, and why:

- ``script-src 'self'``: htmx, app.js and queue.js are served from /static; there are no
  inline scripts and no ``on*=`` attributes. ``'unsafe-eval'`` is there only because htmx
  compiles ``hx-trigger`` filters such as ``keyup[key=='Escape']`` with ``Function()``;
  without it those filters fail and, e.g., every key press would cancel a row edit.
  tests/web/test_security_headers.py fails once no template uses one, so that it is dropped
  (together with ``"allowEval": false`` in the htmx-config meta).
- ``style-src 'self'`` with ``style-src-attr 'unsafe-inline'``: stylesheets are files, but a
  few ``style="width: …%"`` attributes draw progress and score bars. No ``<style>`` element
  may be injected (CSS selectors could read attribute values such as the CSRF token).
- ``img-src 'self' https: http:``: gift items show their supplier's picture by URL (imports
  accept http and https addresses); the evaluation chart and covers are served by Curate.
"""

from __future__ import annotations

from flask import current_app

SCRIPT_SRC = "'self' 'unsafe-eval'"

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    f"script-src {SCRIPT_SRC}",
    "style-src 'self'",
    "style-src-attr 'unsafe-inline'",
    "img-src 'self' https: http:",
    "frame-ancestors 'none'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
])

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # for browsers that ignore frame-ancestors
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}

# Only in production: a development server on plain http must not teach the browser HTTPS-only.
HSTS = {"Strict-Transport-Security": "max-age=31536000"}


def security_headers(production: bool) -> dict[str, str]:
    """The headers every response gets, HSTS included in production."""
    return {**HEADERS, **HSTS} if production else dict(HEADERS)


def add_security_headers(response):
    """``after_request`` hook: add each header the view did not set itself."""
    production = current_app.config["ENV"] == "production"
    for name, value in security_headers(production).items():
        response.headers.setdefault(name, value)
    return response
