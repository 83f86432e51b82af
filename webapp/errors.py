"""Error pages: 400/403/404/405/413/422/429/500/503, each as a whole page or an HTMX fragment.

For an HTMX request the error fragment is re-targeted to the page's ``#flash`` region, so the
message appears where the user looks, whatever element asked. Under ``/api/`` errors are JSON.
"""

from __future__ import annotations

import logging

from flask import current_app, g, has_app_context, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, InternalServerError

from webapp.extensions import db
from webapp.htmx import render_page_or_block, wants_fragment

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Not allowed", "Your account's role does not give access to this page."),
    404: ("Not found", "There is nothing at this address. Check the link, or go back home."),
    405: ("Method not allowed", "This address does not accept that kind of request."),
    409: ("Changed meanwhile", "Someone else changed this while you had it open. Reload and "
                               "try again."),
    413: ("Too large", "The upload is larger than this server accepts."),
    422: ("Invalid input", "Some of what was sent is not valid. Correct it and try again."),
    429: ("Too many attempts", "Too many attempts in a short time. Wait a minute and try again."),
    500: ("Something went wrong", "The server hit an error. Nothing was saved. Try again."),
    503: ("Unavailable", "A service Curate needs is unavailable. Try again shortly."),
}
#: What a user sees while the database cannot be reached (pages and API alike).
DATABASE_UNAVAILABLE = ("The database is unavailable right now, so nothing was saved. "
                        "Try again in a few seconds.")
#: ... when the request had already committed its change (only the page after it failed).
SAVED_THEN_UNAVAILABLE = ("The database is unavailable right now. Your change was saved before "
                          "it went away, but this page could not be shown: reload it in a few "
                          "seconds.")
#: ... when the connection died during the COMMIT itself: the server may have applied it.
MAYBE_SAVED = ("The database is unavailable right now. It went away while your change was "
               "being saved, so it may or may not have been saved: reload in a few seconds and "
               "check before trying again.")
#: Seconds a client should wait before retrying after a database outage (``Retry-After``).
RETRY_AFTER_SECONDS = 5


def is_api_request() -> bool:
    """True for a request under ``/api/``, which gets JSON errors.

    The path decides, not the blueprint: routing errors happen before any blueprint is known.
    """
    return request.path.startswith("/api/")


def render_error(status: int, detail: str | None = None):
    """Render the error page (or fragment) for ``status`` with an optional specific detail."""
    title, message = MESSAGES.get(status, (f"Error {status}", ""))
    response = render_page_or_block(
        "errors/error.html", "flash", status=status,
        status_code=status, title=title, message=detail or message,
    )
    if wants_fragment():
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "outerHTML"
    return response


def handle_http_error(error: HTTPException):
    """Render any HTTP error raised by a view or by routing (JSON under ``/api/``).

    Routing errors (unknown URL, wrong method) happen before Flask knows the blueprint, so the
    API's own handlers never see them; the path decides instead.
    """
    if is_api_request():
        from webapp.api.errors import handle_http_error as api_error

        return api_error(error)
    status = error.code or 500
    # A description passed to abort() is specific to the case; werkzeug's stock one is not.
    stock = type(error).description
    detail = error.description if error.description != stock else None
    return render_error(status, detail)


def handle_csrf_error(error: CSRFError):
    """A missing or wrong CSRF token: say so plainly; nothing was changed."""
    return render_error(
        400,
        "The form's security token is missing or has expired, so nothing was changed. "
        "Reload the page and try again.",
    )


def handle_server_error(error: Exception):
    """Roll back the session so a failed request leaves no half-written rows."""
    db.session.rollback()
    original = getattr(error, "original_exception", error)
    log.exception("Unhandled error", exc_info=original)
    return render_error(500)


def handle_database_unavailable(error: OperationalError | InterfaceError | PoolTimeout):
    """503 with ``Retry-After`` when the database cannot be reached (lost connection, restart).

    An outage is not a bug in Curate, so it gets a clear "try again" instead of a 500; the
    cause is still logged with its traceback.
    """
    rollback_quietly()
    log.error("Database unavailable: %s", getattr(error, "orig", None) or error, exc_info=error)
    # The user object may be expired (rolled back) or was never loaded (the user_loader itself
    # failed); rendering it would query the dead database again, so the page is anonymous.
    # (Flask-Login has no public call for "anonymous for this request only"; the outage tests
    # fail if this stops working.)
    current_app.login_manager._update_request_context_with_user(None)
    retry = [("Retry-After", str(RETRY_AFTER_SECONDS))]
    message = unavailable_message()
    if is_api_request():
        from webapp.api.errors import json_error

        return json_error(503, message, headers=retry)
    response = render_error(503, message)
    response.headers.extend(retry)
    return response


def unavailable_message() -> str:
    """What the 503 says about the user's change: not saved, saved, or perhaps saved.

    A request that committed before the connection died did save (only its answer failed), so
    "nothing was saved" would be false there; the storm test in test_faults_processes.py found
    such answers. Reads say the plain message (their commits are bookkeeping, not a change).
    """
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return DATABASE_UNAVAILABLE
    return {"done": SAVED_THEN_UNAVAILABLE, "started": MAYBE_SAVED}.get(
        g.get("db_commit"), DATABASE_UNAVAILABLE)


def rollback_quietly() -> None:
    """Roll back the session, tolerating a connection that is already gone.

    Nothing half-written survives either way: a dead connection's transaction is lost with it.
    """
    try:
        db.session.rollback()
    except SQLAlchemyError:
        log.warning("Rollback failed after a database error", exc_info=True)


def remove_session_quietly(_error: BaseException | None = None) -> None:
    """Teardown: remove the request's session, tolerating a connection that is already gone.

    When the database dropped the connection after the request's last statement (a restart),
    the ROLLBACK inside the removal raised after the response was built: a 500 for a request
    that worked, a committed write included, and the broken session stayed registered.
    Registered after ``db.init_app``, so it runs before Flask-SQLAlchemy's own removal (Flask
    runs teardowns in reverse order), which then finds nothing left to do.
    """
    try:
        db.session.remove()
    except SQLAlchemyError:
        log.warning("The database connection was lost at the end of a request", exc_info=True)
        db.session.remove()  # the failed close has ended the transaction: this one succeeds


def _note_commit(state: str):
    """A listener recording, for this request, how far its last COMMIT got."""
    def note(*_args) -> None:
        if has_app_context():
            g.db_commit = state
    return note


#: Whether a request's change reached the database, for the 503 message: the engine's
#: ``commit`` fires as COMMIT is sent (after the flush worked), the session's ``after_commit``
#: once the server confirmed it.
COMMIT_LISTENERS = ((Engine, "commit", _note_commit("started")),
                    (Session, "after_commit", _note_commit("done")))


def register_error_handlers(app) -> None:
    """Attach the handlers to ``app``."""
    app.teardown_appcontext(remove_session_quietly)
    for target, name, listener in COMMIT_LISTENERS:  # once per process: the classes are shared
        if not event.contains(target, name, listener):
            event.listen(target, name, listener)
    app.register_error_handler(CSRFError, handle_csrf_error)
    # Connection loss surfaces as one of these DBAPIError subclasses, wherever the query was.
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(InterfaceError, handle_database_unavailable)
    # Every pooled connection busy for pool_timeout seconds: overload, also worth a retry.
    app.register_error_handler(PoolTimeout, handle_database_unavailable)
    app.register_error_handler(HTTPException, handle_http_error)
    # Unhandled exceptions reach this handler as InternalServerError(original_exception=...).
    app.register_error_handler(InternalServerError, handle_server_error)
