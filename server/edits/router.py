"""HTTP routes of the claim edits: how strict each edit is per payer class (supervisors)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from server.auth.deps import SessionDep, SupervisorDep
from server.edits import service
from server.web import forms
from server.web.templates import render

router = APIRouter()

API = "/api/v1"


class LevelIn(BaseModel):
    """One edit's level for one payer class (`*`: every payer; `default`: back to the edit's)."""

    model_config = ConfigDict(extra="forbid")

    payer_class: str = Field(min_length=1, max_length=100)
    edit: str = Field(min_length=1, max_length=60)
    level: str = Field(pattern=r"^(error|warning|off|default)$")


def _levels(session: Session) -> dict[str, Any]:
    return {
        "edits": [
            {"id": edit, "default": default, "description": what}
            for edit, (default, what) in service.EDITS.items()
        ],
        "items": [
            {"payer_class": r.payer_class, "edit": r.edit, "level": r.level}
            for r in service.list_levels(session)
        ],
    }


@router.get(f"{API}/edits/levels", tags=["edits"])
def api_levels(session: SessionDep, _: SupervisorDep) -> dict[str, Any]:
    """The claim edits with their default levels, and the levels set per payer class."""
    return _levels(session)


@router.put(f"{API}/edits/levels", tags=["edits"])
def api_set_level(session: SessionDep, actor: SupervisorDep, body: LevelIn) -> dict[str, Any]:
    """Set an edit's level (error, warning, off, or default) for a payer class."""
    service.set_level(
        session, actor=actor, payer_class=body.payer_class, edit=body.edit, level=body.level
    )
    return _levels(session)


def _page(
    request: Request, session: Session, *, message: str | None = None, error: str | None = None
) -> Response:
    return render(
        request,
        "edits/levels.html",
        {**_levels(session), "message": message, "error": error},
        status_code=422 if error else 200,
    )


@router.get("/edits", response_class=HTMLResponse)
def levels_page(
    request: Request,
    session: SessionDep,
    _: SupervisorDep,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Claim edits: each edit's default level and the levels set per payer class."""
    return _page(request, session, message={"saved": "Saved."}.get(done or ""))


@router.post("/edits/levels", response_class=HTMLResponse)
def set_level_page(
    request: Request,
    session: SessionDep,
    actor: SupervisorDep,
    payer_class: Annotated[str, Form(min_length=1, max_length=100)],
    edit: Annotated[str, Form(min_length=1, max_length=60)],
    level: Annotated[str, Form(max_length=10)],
) -> Response:
    """Set a level from the page (a refused value shows the page again with the reason)."""
    forms.on_error(request, lambda req, own, exc, _form: _page(req, own, error=forms.message(exc)))
    service.set_level(session, actor=actor, payer_class=payer_class, edit=edit, level=level)
    return RedirectResponse("/edits?done=saved", status_code=303)
