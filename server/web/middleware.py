"""Pure ASGI middleware: request ids, security headers, body size limit, metrics."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.config import get_settings
from server.db import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE, db_unavailable

log = logging.getLogger("chartdesk")
access_log = logging.getLogger("chartdesk.access")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)

# Prometheus counters: route templates and status codes only, never ids or PHI.
REQUESTS: Counter[tuple[str, str, int]] = Counter()
DURATION: dict[tuple[str, str], float] = {}


class SecurityMiddleware:
    """Adds a request id, security headers and no-store caching, and caps body size."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]
        started = time.perf_counter()
        limit = settings.max_body_bytes
        declared = _header(scope, b"content-length")
        received = 0
        status_holder: dict[str, int] = {}

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() != b"cache-control" or not path.startswith("/static/")
                ]
                headers += [
                    (b"x-request-id", request_id.encode()),
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
                ]
                if not path.startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                    headers.append((b"pragma", b"no-cache"))
                if settings.production:
                    headers.append(
                        (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
                    )
                message["headers"] = headers
            await send(message)

        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                status_holder["status"] = 413
                await _too_large(send, limit)
                return
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            # Read past the limit outside the app's handlers (which answer it themselves).
            if "status" not in status_holder:
                status_holder["status"] = 413
                await _too_large(send, limit)
        except Exception as exc:
            unavailable = db_unavailable(exc)
            # The type only: driver messages can quote row values (patient data).
            log.error(
                "%s %s on %s %s request_id=%s",
                "database unavailable:" if unavailable else "unhandled",
                type(exc).__name__,
                scope.get("method"),
                getattr(scope.get("route"), "path", "?"),
                request_id,
            )
            if "status" not in status_holder:
                await _internal_error(scope, send_with_headers, unavailable=unavailable)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or (
                "/static" if path.startswith("/static/") else "unmatched"
            )
            method = scope.get("method", "GET")
            status = status_holder.get("status", 500)
            elapsed = time.perf_counter() - started
            REQUESTS[(method, template, status)] += 1
            key = (method, template)
            DURATION[key] = DURATION.get(key, 0.0) + elapsed
            # The access log: the route template, never the path or query (they can carry
            # an MRN or typed codes); uvicorn's own access log is off for that reason.
            access_log.info(
                "%s %s %s %.1fms request_id=%s",
                method,
                template,
                status,
                elapsed * 1000,
                request_id,
            )


class BodyTooLarge(StarletteHTTPException):
    """The request body passed the configured limit while streaming.

    An HTTPException so that FastAPI's own body parsing (JSON and form parameters) passes
    it on instead of turning it into "400 error parsing the body"; the app's handler then
    answers 413 in the caller's form (JSON or page).
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body is over the {limit} byte limit.")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "payload_too_large",
                "message": f"Request body is over the {limit} byte limit.",
                "details": [],
            }
        }
    ).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", CSP.encode()),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _internal_error(scope: Scope, send: Send, *, unavailable: bool = False) -> None:
    """500, or 503 with Retry-After when the database cannot be used (the app's handlers
    answer that themselves; this catches what escapes them)."""
    path: str = scope["path"]
    status = 503 if unavailable else 500
    if path.startswith("/api/"):
        code, message = (
            ("unavailable", UNAVAILABLE_MESSAGE)
            if unavailable
            else ("internal_error", "Something went wrong on our side. It has been logged.")
        )
        body = json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()
        ctype = b"application/json"
    else:
        title, text = (
            ("Service unavailable", UNAVAILABLE_MESSAGE)
            if unavailable
            else ("Something went wrong", "It has been logged.")
        )
        body = (
            f"<!doctype html><title>{title}</title><h1>{title}</h1>"
            f'<p>{text} <a href="/home">Back to your home page</a></p>'
        ).encode()
        ctype = b"text/html; charset=utf-8"
    headers: list[Any] = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    if unavailable:
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def metrics_text() -> str:
    """Request counts and time per route template, then this process's HL7 listener
    counters (`chartdesk hl7 listen --metrics-port` serves the same text), in Prometheus
    text format."""
    from server.interfaces.metrics import metrics_text as hl7_metrics_text

    lines = [
        "# HELP chartdesk_requests_total Requests by method, route and status.",
        "# TYPE chartdesk_requests_total counter",
    ]
    for (method, route, status), count in sorted(REQUESTS.items()):
        labels = f'method="{method}",route="{route}",status="{status}"'
        lines.append(f"chartdesk_requests_total{{{labels}}} {count}")
    lines += [
        "# HELP chartdesk_request_seconds_total Time spent serving requests.",
        "# TYPE chartdesk_request_seconds_total counter",
    ]
    for (method, route), seconds in sorted(DURATION.items()):
        lines.append(
            f'chartdesk_request_seconds_total{{method="{method}",route="{route}"}} {seconds:.6f}'
        )
    return "\n".join(lines) + "\n" + hl7_metrics_text()
