"""Jinja2 templates with fragment rendering for htmx (block names match element ids)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from jinja2_fragments.fastapi import Jinja2Blocks

from server.audit.search import PURPOSE_TITLES
from server.auth import passwords
from server.config import PROJECT_ROOT, get_settings
from server.web import display

templates = Jinja2Blocks(directory=str(PROJECT_ROOT / "templates"))
templates.env.filters.update(
    when=display.when,
    countdown=display.countdown,
    day=display.day,
    money=display.money,
    age=display.age,
    stay_days=display.stay_days,
    note=display.note,
    midsentence=display.midsentence,
    totp_qr=passwords.totp_qr,
)
templates.env.globals["PURPOSE_TITLES"] = PURPOSE_TITLES  # the audit legend's purposes


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (so a fragment is enough)."""
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    block: str | None = None,
    status_code: int = 200,
) -> Response:
    """Render a page, or only `block` of it (for htmx), with the caller in context."""
    ctx: dict[str, Any] = {
        "principal": getattr(request.state, "principal", None),
        "settings": get_settings(),
    }
    ctx.update(context or {})
    if block is not None:
        return templates.TemplateResponse(
            request, name, ctx, block_name=block, status_code=status_code
        )
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)
