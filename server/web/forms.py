"""Form pages that fail: the route names its page once, the error handler re-renders it.

A route that serves a form calls `on_error(request, page)` first thing (after its access
check has passed). If the route then raises an `AppError`, the request's transaction rolls
back as always (`session_scope`), and the one error handler renders `page` again with the
message, in a fresh transaction, with what the person typed (`submitted(request)`), instead
of a dead-end error page. Routers never catch and roll back themselves.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import Response
from sqlmodel import Session

from server.db import session_scope
from server.errors import AppError

FormPage = Callable[[Request, Session, AppError], Response]


def on_error(request: Request, page: FormPage) -> None:
    """Re-render `page` with the message if this request fails with an AppError."""
    request.state.form_page = page


def error_page(request: Request, exc: AppError) -> Response | None:
    """The form page re-rendered with `exc`'s message (None if the route named none)."""
    page: FormPage | None = getattr(request.state, "form_page", None)
    if page is None:
        return None
    with session_scope() as session:
        return page(request, session, exc)


def message(exc: AppError) -> str:
    """The error's message with what its details say about each field."""
    details = "; ".join(str(d.get("msg", "")) for d in exc.details if isinstance(d, dict))
    return f"{exc.message} {details}" if details else exc.message
