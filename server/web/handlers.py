"""One place that turns errors into JSON for `/api`, pages for browsers, fragments for htmx.

Never a stack trace, never the request body (it may hold patient data).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.db import DB_UNAVAILABLE, RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE
from server.errors import AppError, NotAuthenticated, ValidationFailed
from server.web import forms
from server.web.templates import is_htmx, render

log = logging.getLogger("chartdesk")

_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    503: "unavailable",
}


def wants_json(request: Request) -> bool:
    """API paths and JSON clients get JSON; browsers get pages."""
    return request.url.path.startswith("/api/") or (
        "application/json" in request.headers.get("accept", "")
        and "text/html" not in request.headers.get("accept", "")
    )


def error_response(
    request: Request,
    *,
    status: int,
    code: str,
    message: str,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render one error in the form the caller understands."""
    if wants_json(request):
        return JSONResponse(
            {"error": {"code": code, "message": message, "details": details or []}},
            status_code=status,
            headers=headers,
        )
    if is_htmx(request):
        resp = render(
            request,
            "errors/error.html",
            {"status": status, "message": message, "code": code},
            block="flash",
            status_code=status,
        )
        resp.headers["HX-Retarget"] = "#flash"
        resp.headers["HX-Reswap"] = "innerHTML"
        if headers:
            resp.headers.update(headers)
        return resp
    resp = render(
        request,
        "errors/error.html",
        {"status": status, "message": message, "code": code},
        status_code=status,
    )
    if headers:
        resp.headers.update(headers)
    return resp


def _safe_validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only the location and the kind of problem: pydantic's "input" may hold patient data.
    return [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]


# What pydantic's error types mean, said plainly ("{field}" is the form field's name).
_PLAIN: dict[str, str] = {
    "missing": "{field} is required.",
    "string_too_long": "{field} is too long.",
    "string_too_short": "{field} is too short.",
    "int_parsing": "{field} must be a whole number.",
    "int_type": "{field} must be a whole number.",
    "int_from_float": "{field} must be a whole number.",
    "float_parsing": "{field} must be a number.",
    "greater_than_equal": "{field} is below the lowest allowed value.",
    "greater_than": "{field} is below the lowest allowed value.",
    "less_than_equal": "{field} is above the highest allowed value.",
    "less_than": "{field} is above the highest allowed value.",
    "literal_error": "{field} is not one of the choices.",
    "enum": "{field} is not one of the choices.",
    "date_from_datetime_parsing": "{field} must be a date (YYYY-MM-DD).",
    "date_parsing": "{field} must be a date (YYYY-MM-DD).",
    "bool_parsing": "{field} must be yes or no.",
}
# Form field names whose words do not say it to a person.
_FIELD_WORDS = {"ids": "The selection", "username": "The coder", "dx_code": "A diagnosis code"}


def plain_field_problem(detail: dict[str, Any]) -> str:
    """One invalid field as a sentence naming it ("Priority must be a whole number.")."""
    loc = detail.get("loc") or []
    names = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    name = next((n for n in names if not n.isdigit()), "")
    field = _FIELD_WORDS.get(name) or (name.replace("_", " ").capitalize() or "A field")
    sentence = _PLAIN.get(str(detail.get("type", "")), "{field} is not valid.")
    return sentence.format(field=field)


def install_handlers(app: FastAPI) -> None:
    """Register the error handlers on `app`."""

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        if not wants_json(request):  # a form that failed: its page again, with the message
            page = await forms.error_page(request, exc)
            if page is not None:
                return page
        if isinstance(exc, NotAuthenticated) and not wants_json(request):
            if is_htmx(request):
                # Back to the page the person was on after signing in again.
                target = "/login?expired=1" if exc.code == "session_expired" else "/login"
                here = urlsplit(request.headers.get("hx-current-url", ""))
                if here.path.startswith("/") and here.netloc in ("", request.url.netloc):
                    target += ("&" if "?" in target else "?") + "next="
                    target += quote(here.path, safe="/")
                return HTMLResponse("", status_code=401, headers={"HX-Redirect": target})
            if request.method == "GET":
                target = "/login"
                if request.url.path not in ("/", "/login"):
                    target += "?next=" + quote(request.url.path, safe="/")
                if exc.code == "session_expired":
                    target += ("&" if "?" in target else "?") + "expired=1"
                return RedirectResponse(target, status_code=303)
        return error_response(
            request,
            status=exc.status_code,
            code=exc.code,
            message=exc.message,
            details=exc.details,
            headers=exc.headers,
        )

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        # The type only: driver messages can quote row values (patient data).
        log.warning(
            "database unavailable (%s) on %s %s",
            type(exc).__name__,
            request.method,
            getattr(request.scope.get("route"), "path", "?"),
        )
        return error_response(
            request,
            status=503,
            code="unavailable",
            message=UNAVAILABLE_MESSAGE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    for error_type in DB_UNAVAILABLE:
        app.add_exception_handler(error_type, database_unavailable)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        # A route whose access rule is checked in its own statement (auth.deps.PendingCheck):
        # who may call is still answered before what they sent, as on every other route.
        pending = getattr(request.state, "pending_check", None)
        if pending is not None:
            request.state.pending_check = None
            try:
                await run_in_threadpool(pending.check_alone)
            except AppError as refused:
                return await app_error(request, refused)
            except DB_UNAVAILABLE as down:
                return await database_unavailable(request, down)
        if not wants_json(request):  # a form with a bad field: its page again, input kept
            details = [{**d, "msg": plain_field_problem(d)} for d in _safe_validation_details(exc)]
            sentences = list(dict.fromkeys(str(d["msg"]) for d in details))
            failed = ValidationFailed(" ".join(sentences) or "Check the form.", details=details)
            page = await forms.error_page(request, failed)
            if page is not None:
                return page
        return error_response(
            request,
            status=422,
            code="validation_failed",
            message="The request is not valid.",
            details=_safe_validation_details(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = {404: "Not found.", 405: "Method not allowed."}.get(
            exc.status_code, str(exc.detail)
        )
        return error_response(
            request,
            status=exc.status_code,
            code=code,
            message=message,
            headers=getattr(exc, "headers", None),
        )
