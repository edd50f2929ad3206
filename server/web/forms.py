"""Form pages that fail: the route names its page, the error handler shows it again.

A route that serves a form declares its page, either as a dependency (`ErrorPage(page)`,
listed after its access rule and before its fields, so that it also covers fields that fail
validation) or first thing in its body (`on_error(request, page)`). If the request then
fails with an AppError or invalid fields, its transaction rolls back as always
(`session_scope`), and the one error handler renders `page` again in a fresh transaction
with the message and what the person typed, instead of a dead-end error page. Only after
the route's access rule let the caller in (`request.state.access_granted`). Routers never
catch and roll back themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from server.db import session_scope
from server.errors import AppError

# (request, fresh session, the error, the submitted form) -> the page again
FormPage = Callable[[Request, Session, AppError, FormData], Response]


def on_error(request: Request, page: FormPage) -> None:
    """Re-render `page` with the message if this request fails with an AppError."""
    request.state.form_page = page


class ErrorPage:
    """A route dependency: this request's form page, declared before its fields are read."""

    def __init__(self, page: FormPage) -> None:
        self.page = page

    async def __call__(self, request: Request) -> None:
        on_error(request, self.page)
        if request.method == "POST":  # what was typed, kept for the page (parsed once)
            request.state.form_data = await request.form()


async def error_page(request: Request, exc: AppError) -> Response | None:
    """The form page re-rendered with `exc` (None if the route named none or refused)."""
    page: FormPage | None = getattr(request.state, "form_page", None)
    if page is None or not getattr(request.state, "access_granted", False):
        return None
    form = getattr(request.state, "form_data", None)
    if form is None:
        try:
            form = await request.form()
        except Exception:  # noqa: BLE001 - a body that is not a form: nothing to keep
            form = FormData()
    return await run_in_threadpool(_render, page, request, exc, form)


def _render(page: FormPage, request: Request, exc: AppError, form: FormData) -> Response | None:
    try:
        with session_scope() as session:
            return page(request, session, exc, form)
    except AppError:  # the page itself cannot be shown (gone, no longer yours): plain error
        return None


def message(exc: AppError) -> str:
    """The error's message with what its details say about each field."""
    msgs = [str(d.get("msg", "")) for d in exc.details if isinstance(d, dict)]
    fresh = [m for m in dict.fromkeys(msgs) if m and m not in exc.message]
    details = ("; " if any(not m.endswith(".") for m in fresh) else " ").join(fresh)
    return f"{exc.message} {details}" if details else exc.message


def field_errors(exc: AppError | None) -> dict[str, str]:
    """{field name: message} from an error's details, for `aria-invalid` at each field."""
    out: dict[str, str] = {}
    for d in exc.details if exc else []:
        if not isinstance(d, Mapping):
            continue
        loc: Any = d.get("loc")
        parts = loc if isinstance(loc, list | tuple) else [loc]
        names = [str(p) for p in parts if p not in ("body", "query", "path") and p is not None]
        if names:
            out.setdefault(names[-1] if len(names) == 1 else names[0], str(d.get("msg", "")))
    return out
