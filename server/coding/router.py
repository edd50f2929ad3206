"""HTTP routes of the coding domain: code entry, submit, search, QA; pages and /api/v1 JSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from server.auth.deps import CoderDep, CoderOrSupervisorDep, RowId, SessionDep, SupervisorDep
from server.auth.principal import Principal
from server.coding import abstract as abstract_service
from server.coding import codesets, service
from server.coding.abstract import Abstract
from server.coding.forms import CodesForm
from server.coding.schemas import (
    AccuracyView,
    Codes,
    Problem,
    QaItemView,
    SearchHit,
    SearchResult,
    SubmitView,
    ValidationView,
)
from server.errors import AppError
from server.qa import service as qa_service
from server.queue import service as queue_service
from server.web import forms
from server.web.templates import is_htmx, render

router = APIRouter()

API = "/api/v1"


def _view(result: service.Validation) -> ValidationView:
    return ValidationView(errors=result.errors, warnings=result.warnings, drg=result.drg)


# ---------------------------------------------------------------- coder API


@router.put(f"{API}/work/{{work_item_id}}/codes", tags=["work"], response_model=ValidationView)
def api_save_codes(
    session: SessionDep, actor: CoderDep, work_item_id: RowId, body: Codes
) -> ValidationView:
    """Save the draft codes (even with errors) and answer the errors and warnings."""
    return _view(service.save_codes(session, actor=actor, work_item_id=work_item_id, codes=body))


@router.put(f"{API}/work/{{work_item_id}}/abstract", tags=["work"], response_model=Abstract)
def api_save_abstract(
    session: SessionDep, actor: CoderDep, work_item_id: RowId, body: Abstract
) -> Abstract:
    """Set the inpatient abstract (NUBC codes; 422 naming the field of a code not listed)."""
    return abstract_service.save_abstract(
        session, actor=actor, work_item_id=work_item_id, abstract=body
    )


@router.post(
    f"{API}/work/{{work_item_id}}/submit",
    tags=["work"],
    response_model=SubmitView,
    responses={422: {"description": "The saved codes have errors (listed in details)."}},
)
def api_submit(session: SessionDep, actor: CoderDep, work_item_id: RowId) -> SubmitView:
    """Submit the saved codes: on to QA review (sampled) or billing; 422 with the errors."""
    item, result = service.submit(session, actor=actor, work_item_id=work_item_id)
    assert item.id is not None  # noqa: S101
    return SubmitView(
        id=item.id,
        status=item.status,
        coded_at=item.coded_at,
        warnings=result.warnings,
        drg=result.drg,
    )


@router.get(f"{API}/codes/search", tags=["codes"], response_model=SearchResult)
def api_search(
    session: SessionDep,
    _: CoderOrSupervisorDep,
    q: Annotated[str, Query(min_length=1, max_length=100)],
    system: Annotated[str, Query(max_length=10)] = "ICD10CM",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchResult:
    """Codes by prefix (E11.) or description words (type 2 diab) in one code system."""
    hits = codesets.search(session, system=system.upper(), query=q, limit=limit)
    return SearchResult(items=[SearchHit(**h.__dict__) for h in hits])


# ---------------------------------------------------------------- supervisor API


class SamplePercent(BaseModel):
    """Share of a queue's submitted items that go to QA review."""

    model_config = ConfigDict(extra="forbid")

    percent: int = Field(ge=0, le=100)


class TrainingFlag(BaseModel):
    """Whether a coder is in training (every submitted item goes to QA review)."""

    model_config = ConfigDict(extra="forbid")

    in_training: bool


@router.get(f"{API}/qa", tags=["qa"])
def api_qa_items(session: SessionDep, _: SupervisorDep) -> dict[str, Any]:
    """Items waiting for QA review, oldest coded first."""
    rows = service.qa_items(session)
    items = [
        QaItemView(id=i.id or 0, queue=q, coded_by=u, coded_at=i.coded_at).model_dump(mode="json")
        for i, q, u in rows
    ]
    return {"items": items, "next_cursor": None}


@router.get(f"{API}/qa/accuracy", tags=["qa"])
def api_accuracy(session: SessionDep, _: SupervisorDep) -> dict[str, Any]:
    """QA accuracy per coder: reviewed, accepted, corrected, accuracy percent."""
    items = [
        AccuracyView(
            coder=a.coder,
            reviewed=a.reviewed,
            accepted=a.accepted,
            corrected=a.corrected,
            accuracy_percent=a.accuracy_percent,
        ).model_dump()
        for a in service.accuracy(session)
    ]
    return {"items": items, "next_cursor": None}


@router.put(f"{API}/queues/{{name}}/qa-sample", tags=["qa"])
def api_qa_sample(
    session: SessionDep, actor: SupervisorDep, name: str, body: SamplePercent
) -> dict[str, Any]:
    """Set the share of a queue's submitted items sampled for QA review."""
    queue = service.set_sample_percent(session, actor=actor, queue_name=name, percent=body.percent)
    return {"name": queue.name, "qa_sample_percent": queue.qa_sample_percent}


@router.put(f"{API}/users/{{username}}/training", tags=["qa"])
def api_training(
    session: SessionDep, actor: SupervisorDep, username: str, body: TrainingFlag
) -> dict[str, Any]:
    """Mark a coder as in training (all their work goes to QA review) or not."""
    user = service.set_in_training(
        session, actor=actor, username=username, in_training=body.in_training
    )
    return {"username": user.username, "in_training": user.in_training}


# ---------------------------------------------------------------- workbench fragments


def _workbench(
    request: Request,
    session: Session,
    *,
    actor: Principal,
    work_item_id: RowId,
    codes: Codes,
    problems: service.Validation | None,
    block: str | None = None,
    status_code: int = 200,
) -> Response:
    item = queue_service.my_item(session, work_item_id=work_item_id, actor=actor)
    on = service.claim_context(session, item=item).date_of_service
    return render(
        request,
        "coding/workbench.html",
        {
            "item_id": work_item_id,
            "inpatient": service.is_inpatient(session, item),
            "codes": codes,
            "problems": problems,
            # What each picked charge code sets: workbench.js fills the line with it.
            "charge_fills": service.charge_fills(session, codes=codes, on=on),
        },
        block=block,
        status_code=status_code,
    )


@router.post("/work/{work_item_id}/codes", response_class=HTMLResponse)
def save_codes_page(
    request: Request,
    session: SessionDep,
    actor: CoderDep,
    work_item_id: RowId,
    codes: CodesForm,
) -> Response:
    """Save the draft as typed (validation as you type): answers the checks fragment."""
    result = service.save_codes(session, actor=actor, work_item_id=work_item_id, codes=codes)
    return _workbench(
        request,
        session,
        actor=actor,
        work_item_id=work_item_id,
        codes=codes,
        problems=result,
        block="code_problems",
    )


@router.post("/work/{work_item_id}/codes/check", response_class=HTMLResponse)
def check_codes_page(
    request: Request,
    session: SessionDep,
    actor: CoderDep,
    work_item_id: RowId,
    codes: CodesForm,
) -> Response:
    """Validation as you type: check what is on screen without saving. An inpatient stay is
    grouped as the save groups it (the saved abstract's discharge status, the patient's age
    and sex): opening those is an audited use (code-check); an outpatient check opens nothing."""
    item = queue_service.leased_item(session, actor=actor, work_item_id=work_item_id)
    context = service.check_context(session, actor=actor, item=item)
    codes = service.with_charge_codes(session, codes=codes, on=context.date_of_service)
    result = service.validate(session, codes=codes, context=context)
    return _workbench(
        request,
        session,
        actor=actor,
        work_item_id=work_item_id,
        codes=codes,
        problems=result,
        block="code_problems",
    )


@router.post("/work/{work_item_id}/submit", response_class=HTMLResponse)
def submit_page(
    request: Request,
    session: SessionDep,
    actor: CoderDep,
    work_item_id: RowId,
    codes: CodesForm,
) -> Response:
    """Save what is on screen and submit; errors come back on the page."""
    result = service.save_codes(session, actor=actor, work_item_id=work_item_id, codes=codes)
    htmx = is_htmx(request)
    if result.errors and htmx:  # htmx swaps 2xx answers only: the errors show in place
        return _workbench(
            request,
            session,
            actor=actor,
            work_item_id=work_item_id,
            codes=codes,
            problems=result,
            block="code_problems",
        )
    if result.errors:  # a plain form post: back to the item page, which shows the errors
        return RedirectResponse(f"/work/{work_item_id}", status_code=303)
    forms.on_error(
        request,
        lambda req, s, exc, _form: _submit_refused(
            req,
            s,
            actor=actor,
            work_item_id=work_item_id,
            codes=codes,
            warnings=result.warnings,
            exc=exc,
        ),
    )
    item, _ = service.submit(session, actor=actor, work_item_id=work_item_id)
    # My work says where the chart went, with the warnings it left with, then opens the next.
    done = f"/work?submitted={work_item_id}&to={item.status}&warnings={len(result.warnings)}"
    if htmx:
        return Response(status_code=204, headers={"HX-Redirect": done})
    return RedirectResponse(done, status_code=303)


def _submit_refused(
    request: Request,
    session: Session,
    *,
    actor: Principal,
    work_item_id: int,
    codes: Codes,
    warnings: list[Problem],
    exc: AppError,
) -> Response:
    """A submit refused after the save (the abstract's discharge status): the problems in
    place on the workbench, or the item page for a plain form post."""
    if not is_htmx(request):
        return RedirectResponse(f"/work/{work_item_id}", status_code=303)
    problems = service.Validation()
    problems.errors = [Problem.model_validate(d) for d in exc.details if isinstance(d, dict)]
    problems.warnings = warnings
    return _workbench(
        request,
        session,
        actor=actor,
        work_item_id=work_item_id,
        codes=codes,
        problems=problems,
        block="code_problems",
    )


@router.get("/codes/search", response_class=HTMLResponse)
def search_fragment(
    request: Request,
    session: SessionDep,
    _: CoderOrSupervisorDep,
    q: Annotated[str, Query(max_length=100)] = "",
    system: Annotated[str, Query(max_length=10)] = "ICD10CM",
) -> Response:
    """Autocomplete options (<option> elements for a datalist)."""
    try:
        hits = codesets.search(session, system=system.upper(), query=q, limit=15) if q else []
    except AppError:
        hits = []
    return render(request, "coding/_options.html", {"hits": hits})


# ---------------------------------------------------------------- QA pages


@router.get("/qa", response_class=HTMLResponse)
def qa_page(
    request: Request,
    session: SessionDep,
    _: SupervisorDep,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """QA review: items waiting, each coder's accuracy, sample percentages and trainees,
    and the billed charts a retrospective review can take."""
    return _qa_page(request, session, message={"saved": "Saved."}.get(done or ""))


def _qa_page(
    request: Request,
    session: Session,
    *,
    message: str | None = None,
    error: AppError | None = None,
    error_item: int | None = None,
) -> Response:
    return render(
        request,
        "coding/qa.html",
        {
            "rows": service.qa_items(session),
            "billed": service.billed_items(session),
            "accuracy": service.accuracy(session),
            "queues": queue_service.list_queues(session),
            "coders": service.coder_training(session),
            "message": message,
            "error": forms.message(error) if error else None,
            "error_item": error_item,
        },
        status_code=error.status_code if error else 200,
    )


@router.post("/qa/{work_item_id}/retrospective", response_class=HTMLResponse)
def retrospective_page(
    request: Request, session: SessionDep, actor: SupervisorDep, work_item_id: RowId
) -> Response:
    """Send a billed chart back to QA review (the same worksheet); a refusal shows the QA
    page with the reason at that chart."""
    forms.on_error(
        request,
        lambda req, s, exc, _form: _qa_page(req, s, error=exc, error_item=work_item_id),
    )
    qa_service.send_retrospective(session, actor=actor, work_item_id=work_item_id)
    return RedirectResponse(f"/qa/{work_item_id}", status_code=303)


@router.post("/qa/queues/{name}/sample", response_class=HTMLResponse)
def qa_sample_page(
    session: SessionDep,
    actor: SupervisorDep,
    name: str,
    percent: Annotated[int, Form(ge=0, le=100)],
) -> Response:
    """Set a queue's QA sample percentage from the QA page."""
    service.set_sample_percent(session, actor=actor, queue_name=name, percent=percent)
    return RedirectResponse("/qa?done=saved", status_code=303)


@router.post("/qa/users/{username}/training", response_class=HTMLResponse)
def qa_training_page(
    session: SessionDep,
    actor: SupervisorDep,
    username: str,
    in_training: Annotated[bool, Form()] = False,
) -> Response:
    """Mark a coder in training (or not) from the QA page."""
    service.set_in_training(session, actor=actor, username=username, in_training=in_training)
    return RedirectResponse("/qa?done=saved", status_code=303)
