"""HTTP routes of the QA sampling rules of a queue (supervisors): a settings page and its API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session
from starlette.datastructures import FormData

from server.auth.deps import RowId, SessionDep, SupervisorDep
from server.errors import AppError, ValidationFailed
from server.qa import sampling
from server.queue import service as queue_service
from server.web import forms
from server.web.templates import render

router = APIRouter()

API = "/api/v1"


class RuleBody(BaseModel):
    """A targeted rule: kind (drg, mdc, code, payer_class, charge_over, coder), value, percent."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(max_length=20)
    value: str = Field(max_length=100)
    percent: int = 100


class SamplingBody(BaseModel):
    """A queue's sampling settings and its targeted rules in order (percentages 0-100)."""

    model_config = ConfigDict(extra="forbid")

    random_percent: int
    new_coder_charts: int = 0
    target_accuracy: int = 95
    adaptive: bool = False
    base_percent: float = 10.0
    k_accuracy: float = 2.0
    k_denial: float = 1.0
    floor_percent: int = 5
    ceiling_percent: int = 50
    review_window: int = 20
    rules: list[RuleBody] = Field(default_factory=list, max_length=100)


def _answer(session: Session, *, name: str) -> dict[str, Any]:
    queue = queue_service.get_queue(session, name=name)
    assert queue.id is not None  # noqa: S101
    cfg = sampling.settings_for(session, queue_id=queue.id)
    return {
        "queue": queue.name,
        "random_percent": queue.qa_sample_percent,
        "new_coder_charts": cfg.new_coder_charts,
        "target_accuracy": cfg.target_accuracy,
        "adaptive": cfg.adaptive,
        "base_percent": cfg.base_percent,
        "k_accuracy": cfg.k_accuracy,
        "k_denial": cfg.k_denial,
        "floor_percent": cfg.floor_percent,
        "ceiling_percent": cfg.ceiling_percent,
        "review_window": cfg.review_window,
        "formula": sampling.FORMULA,
        "rules": [
            {"id": r.id, "kind": r.kind, "value": r.value, "percent": r.percent}
            for r in sampling.rules_for(session, queue_id=queue.id)
        ],
        "coders": [
            {
                "coder": r.coder,
                "rate": r.rate,
                "accuracy": r.accuracy,
                "reviewed": r.reviewed,
                "denial_rate": r.denial,
                "coded": r.coded,
            }
            for r in sampling.coder_rates(session, queue_id=queue.id)
        ],
    }


@router.get(f"{API}/queues/{{name}}/qa-sampling", tags=["qa"])
def api_sampling(session: SessionDep, _: SupervisorDep, name: str) -> dict[str, Any]:
    """A queue's sampling rules in order, the adaptive formula and each coder's current rate."""
    return _answer(session, name=name)


@router.put(f"{API}/queues/{{name}}/qa-sampling", tags=["qa"])
def api_set_sampling(
    session: SessionDep, actor: SupervisorDep, name: str, body: SamplingBody
) -> dict[str, Any]:
    """Replace a queue's sampling settings and targeted rules (422 naming each bad field)."""
    given = sampling.SettingsIn(**body.model_dump(exclude={"rules"}))
    rules = [sampling.RuleIn(kind=r.kind, value=r.value, percent=r.percent) for r in body.rules]
    sampling.save_all(session, actor=actor, queue_name=name, given=given, rules=rules)
    return _answer(session, name=name)


# ---------------------------------------------------------------- the settings page


SETTINGS_FIELDS = (
    "random_percent",
    "new_coder_charts",
    "target_accuracy",
    "base_percent",
    "k_accuracy",
    "k_denial",
    "floor_percent",
    "ceiling_percent",
    "review_window",
)
FLOATS = {"base_percent", "k_accuracy", "k_denial"}


def _number(problems: list[dict[str, Any]], name: str, raw: str) -> float:
    try:
        value = float(raw.strip()) if name in FLOATS else int(raw.strip())
    except ValueError:
        what = "a number" if name in FLOATS else "a whole number"
        problems.append({"loc": [name], "msg": f"{name.replace('_', ' ')} must be {what}."})
        return 0
    return value


def _page(
    request: Request,
    session: Session,
    *,
    name: str,
    message: str | None = None,
    error: AppError | None = None,
    failed: str | None = None,
    form: FormData | None = None,
) -> Response:
    queue = queue_service.get_queue(session, name=name)
    assert queue.id is not None  # noqa: S101
    return render(
        request,
        "qa/sampling.html",
        {
            "queue": queue,
            "cfg": sampling.settings_for(session, queue_id=queue.id),
            "rules": sampling.rules_for(session, queue_id=queue.id),
            "rates": sampling.coder_rates(session, queue_id=queue.id),
            "kinds": sampling.KINDS,
            "formula": sampling.FORMULA,
            "message": message,
            "failed": failed,
            "error": forms.message(error) if error else None,
            "errors": forms.field_errors(error),
            "form": form or {},
        },
        status_code=error.status_code if error else 200,
    )


def _settings_failed(request: Request, session: Session, exc: AppError, form: FormData) -> Response:
    """The page again with the settings as typed and the message at each bad field."""
    return _page(
        request,
        session,
        name=request.path_params["name"],
        error=exc,
        failed="settings",
        form=form,
    )


def _rule_failed(request: Request, session: Session, exc: AppError, form: FormData) -> Response:
    """The page again with the new rule as typed and the message at its bad field."""
    return _page(
        request, session, name=request.path_params["name"], error=exc, failed="rule", form=form
    )


@router.get("/qa/queues/{name}/sampling", response_class=HTMLResponse)
def sampling_page(
    request: Request,
    session: SessionDep,
    _: SupervisorDep,
    name: str,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """QA sampling of a queue: its rules in order, the adaptive formula, each coder's rate."""
    return _page(request, session, name=name, message={"saved": "Saved."}.get(done or ""))


@router.post("/qa/queues/{name}/sampling", response_class=HTMLResponse)
def save_sampling_page(
    session: SessionDep,
    actor: SupervisorDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_settings_failed))],
    name: str,
    random_percent: Annotated[str, Form(max_length=20)] = "",
    new_coder_charts: Annotated[str, Form(max_length=20)] = "",
    target_accuracy: Annotated[str, Form(max_length=20)] = "",
    adaptive: Annotated[bool, Form()] = False,
    base_percent: Annotated[str, Form(max_length=20)] = "",
    k_accuracy: Annotated[str, Form(max_length=20)] = "",
    k_denial: Annotated[str, Form(max_length=20)] = "",
    floor_percent: Annotated[str, Form(max_length=20)] = "",
    ceiling_percent: Annotated[str, Form(max_length=20)] = "",
    review_window: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Save the settings from the page (a bad value shows the page again, input kept)."""
    raw = {
        "random_percent": random_percent,
        "new_coder_charts": new_coder_charts,
        "target_accuracy": target_accuracy,
        "base_percent": base_percent,
        "k_accuracy": k_accuracy,
        "k_denial": k_denial,
        "floor_percent": floor_percent,
        "ceiling_percent": ceiling_percent,
        "review_window": review_window,
    }
    problems: list[dict[str, Any]] = []
    values = {f: _number(problems, f, raw[f]) for f in SETTINGS_FIELDS}
    if problems:
        raise ValidationFailed("The sampling settings were not saved.", details=problems)
    given = sampling.SettingsIn(adaptive=adaptive, **values)  # type: ignore[arg-type]
    sampling.save_settings(session, actor=actor, queue_name=name, given=given)
    return RedirectResponse(f"/qa/queues/{name}/sampling?done=saved", status_code=303)


@router.post("/qa/queues/{name}/sampling/rules", response_class=HTMLResponse)
def add_rule_page(
    session: SessionDep,
    actor: SupervisorDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_rule_failed))],
    name: str,
    kind: Annotated[str, Form(max_length=20)] = "",
    value: Annotated[str, Form(max_length=100)] = "",
    percent: Annotated[str, Form(max_length=20)] = "100",
) -> Response:
    """Add a targeted rule at the end of the list (a bad value shows the page again)."""
    problems: list[dict[str, Any]] = []
    share = int(_number(problems, "percent", percent))
    if problems:
        raise ValidationFailed("The rule was not added.", details=problems)
    sampling.add_rule(
        session,
        actor=actor,
        queue_name=name,
        rule=sampling.RuleIn(kind=kind, value=value, percent=share),
    )
    return RedirectResponse(f"/qa/queues/{name}/sampling?done=saved", status_code=303)


@router.post("/qa/queues/{name}/sampling/rules/{rule_id}/up", response_class=HTMLResponse)
def move_rule_up_page(
    session: SessionDep, actor: SupervisorDep, name: str, rule_id: RowId
) -> Response:
    """Move a targeted rule one place earlier (it is checked before the one above it)."""
    sampling.move_rule_up(session, actor=actor, queue_name=name, rule_id=rule_id)
    return RedirectResponse(f"/qa/queues/{name}/sampling?done=saved", status_code=303)


@router.post("/qa/queues/{name}/sampling/rules/{rule_id}/delete", response_class=HTMLResponse)
def delete_rule_page(
    session: SessionDep, actor: SupervisorDep, name: str, rule_id: RowId
) -> Response:
    """Remove a targeted rule."""
    sampling.delete_rule(session, actor=actor, queue_name=name, rule_id=rule_id)
    return RedirectResponse(f"/qa/queues/{name}/sampling?done=saved", status_code=303)
