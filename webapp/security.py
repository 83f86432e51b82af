"""Security headers on every response (a Content Security Policy and the browser switches), and
the X-Forwarded-* headers of a reverse proxy, trusted only when configured.

A 20-line ``after_request`` hook rather than Flask-Talisman: Curate needs no nonces, no
per-view policy API and no HTTPS redirect (TLS ends at the proxy, see docs/deploy.md),
so a dependency would add more surface than it saves. Headers are set with ``setdefault``: a
view that sends its own, stricter policy keeps it (e.g. ``tavern.cover``'s sandbox).

What the policy allows, and why:

- ``script-src 'self'``: htmx, app.js and queue.js are served from /static; there are no
  inline scripts and no ``on*=`` attributes, and nothing is evaluated from strings: no
  ``'unsafe-eval'``. htmx would compile ``hx-trigger`` filters such as
  ``keyup[key=='Escape']`` with ``Function()``, so templates use none: app.js sends plain
  events instead (``curate:escape``, ``curate:row-click``), forms filter with htmx's
  ``target:`` modifier, and ``"allowEval": false`` in base.html's htmx-config makes a filter
  left over fail loudly. tests/web/test_security_headers.py checks every template for them.
- ``style-src 'self'`` with ``style-src-attr 'unsafe-inline'``: stylesheets are files, but a
  few ``style="width: …%"`` attributes draw progress and score bars. No ``<style>`` element
  may be injected (CSS selectors could read attribute values such as the CSRF token).
- ``img-src 'self' https: http:``: gift items show their supplier's picture by URL (imports
  accept http and https addresses); the evaluation chart and covers are served by Curate.
"""

from __future__ import annotations

from flask import Flask, abort, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

SCRIPT_SRC = "'self'"

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


#: ProxyFix's arguments, each set by a config key: x_for by PROXY_FIX_X_FOR, and so on.
PROXY_HEADERS = ("for", "proto", "host")


def trust_proxy_headers(app: Flask) -> None:
    """Behind a reverse proxy, take the client's address, scheme and host from X-Forwarded-*.

    Each ``PROXY_FIX_X_*`` setting counts the proxies that append to that header; werkzeug's
    ProxyFix trusts that many values from the right, so whatever a client forged in front of
    them is ignored. Then the login throttle (keyed on ``request.remote_addr``) and the audit
    log see the real client, and ``url_for(_external=True)`` and ``request.is_secure`` see
    https. At 0, the default, the header is ignored: with no proxy of yours setting it, anyone
    could send one to dodge the throttle.
    """
    counts = {f"x_{name}": app.config[f"PROXY_FIX_X_{name.upper()}"] for name in PROXY_HEADERS}
    if any(counts.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **counts)


def refuse_nul_and_nameless_fields() -> None:
    """``before_request``: 400 for a NUL character in the path or in any query or form name or
    value or upload file name, or a form field with no name.

    PostgreSQL refuses NUL in text (a 500) where SQLite stores it, so without this the same
    input behaved differently per database; a multipart part whose name holds a line break
    reaches the forms with the name None. Both were found by the form fuzzing. Uploaded files
    are not looked at: their bytes are the importers' business.
    """
    if "\x00" in request.path or any("\x00" in (upload.filename or "")
                                      for upload in request.files.values()):
        abort(400, "The request holds a NUL character, which Curate does not accept.")
    for pairs in (request.args, request.form):
        for name, value in pairs.items(multi=True):
            if name is None:
                abort(400, "A form field has no name.")
            if "\x00" in name or "\x00" in value:
                abort(400, "The request holds a NUL character, which Curate does not accept.")
