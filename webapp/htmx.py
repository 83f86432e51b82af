"""HTMX helpers: render a whole page or one of its blocks, and set HTMX response headers.

One template per page; its fragments are named blocks whose name matches the DOM id they fill.
"""

from __future__ import annotations

import json

from flask import make_response, render_template
from jinja2_fragments.flask import render_block

from webapp.extensions import htmx


def wants_fragment() -> bool:
    """True when the request came from HTMX and should get a fragment, not a whole page.

    Boosted requests and history restores replace the whole page, so they get the page.
    """
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_page_or_block(template: str, block: str, status: int = 200, **context):
    """Render ``template`` whole, or only ``block`` for an HTMX request.

    The response always carries ``Vary: HX-Request`` so caches keep the two apart.
    """
    if wants_fragment():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


def trigger(response, event: str, detail: object = True):
    """Add ``event`` to the response's ``HX-Trigger`` header, keeping events already there."""
    events = json.loads(response.headers.get("HX-Trigger", "{}"))
    events[event] = detail
    response.headers["HX-Trigger"] = json.dumps(events)
    return response


def add_vary_header(response):
    """``after_request`` hook: every response says that it varies with ``HX-Request``."""
    response.vary.add("HX-Request")
    return response
