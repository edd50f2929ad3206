"""HTTP routes that show a chart: the coder's item page and code panel, QA review,
break-glass, and `GET /api/v1/work/{id}`. Each is one call to `service`.

Included after the queue router, so that its fixed paths (`/api/v1/work/mine`) come first.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import ValidationError
from sqlmodel import Session
from starlette.datastructures import FormData

from server.auth.deps import (
    MAX_ROW_ID,
    CoderDep,
    CoderInStatementDep,
    CoderOrSupervisorDep,
    PendingCheck,
    RowId,
    SessionDep,
    SupervisorDep,
)
from server.auth.principal import Principal
from server.billing import cdm
from server.coding import abstract as abstract_service
from server.coding import codesets, nubc
from server.coding import service as coding_service
from server.coding.abstract import Abstract
from server.coding.forms import CodesForm, codes_from_form
from server.coding.schemas import Codes
from server.config import get_settings
from server.db import async_pool, session_scope
from server.errors import AppError, ValidationFailed
from server.models.base import utcnow
from server.qa import diff as qa_diff
from server.qa import service as qa_service
from server.qa.schemas import FindingIn
from server.qa.taxonomy import taxonomy
from server.queries import service as queries_service
from server.queries.schemas import QueryIn
from server.queue.schemas import WorkItemView
from server.records.schemas import EmergencyAccessRequest, RecordView, safe_errors
from server.web import forms
from server.web.templates import is_htmx, render
from server.workbench import service
from server.workbench.service import ChartView

router = APIRouter()

API = "/api/v1"


def _code_entry(chart: ChartView) -> dict[str, Any]:
    """What the code entry panel (templates/coding/workbench.html) shows."""
    return {
        "item_id": chart.item.id,
        "returned": chart.returned,
        "inpatient": chart.inpatient,
        "codes": chart.codes,
        "problems": chart.problems,
        "queries": chart.queries,
        "providers": chart.providers,
        "titles": chart.titles,
        "abstract": chart.abstract,
        "abstract_values": abstract_values(chart),
        "nubc": nubc,
    }


def _pcs_codes(chart: ChartView) -> list[str]:
    """The saved ICD-10-PCS codes, each once, in line order."""
    codes = [p.code.strip().upper() for p in chart.codes.procedures if p.system == "PCS"]
    return list(dict.fromkeys(c for c in codes if c))


def abstract_values(chart: ChartView, typed: FormData | None = None) -> dict[str, Any]:
    """The abstract form's values: as saved, or as typed (a refused save keeps the input).
    Procedure dates: one per saved PCS code, and any other code the abstract dates."""
    if typed is None:
        saved = chart.abstract.model_dump(mode="json")
        dates: dict[str, str] = dict(saved.pop("procedure_dates"))
        values: dict[str, Any] = {k: "" if v is None else str(v) for k, v in saved.items()}
    else:
        values = {name: str(typed.get(name) or "") for name in ABSTRACT_FIELDS}
        pairs = zip(typed.getlist("pd_code"), typed.getlist("pd_date"), strict=False)
        dates = {str(code): str(when) for code, when in pairs}
    codes = list(dict.fromkeys([*_pcs_codes(chart), *dates]))
    values["procedure_dates"] = [(code, dates.get(code, "")) for code in codes]
    return values


# The abstract form's single fields (the procedure dates come as pd_code/pd_date pairs).
ABSTRACT_FIELDS = (
    "admission_type",
    "admission_source",
    "discharge_status",
    "admission_hour",
    "attending_npi",
    "operating_npi",
    "admitting_diagnosis",
    "birth_weight_grams",
)


def _abstract_errors(exc: AppError) -> dict[str, str]:
    """{field: message} of a refused abstract; a procedure date's as 'procedure_dates.CODE'."""
    errors = forms.field_errors(exc)
    for d in exc.details:
        loc = [str(p) for p in d.get("loc", []) if p != "body"] if isinstance(d, dict) else []
        if len(loc) >= 2 and loc[0] == "procedure_dates":
            errors.setdefault(f"procedure_dates.{loc[1]}", str(d.get("msg", "")))
    return errors


def _abstract_failed(request: Request, session: Session, exc: AppError, form: FormData) -> Response:
    """The abstract again with what was typed and the message at each field: the form
    alone for htmx (swapped in place, 422), else the whole item page."""
    actor: Principal = request.state.principal
    work_item_id = int(request.path_params["work_item_id"])
    if not is_htmx(request):
        return _item_page(
            request,
            session,
            actor=actor,
            work_item_id=work_item_id,
            abstract_error=exc,
            abstract_form=form,
        )
    chart = service.open_chart(
        session, actor=actor, work_item_id=work_item_id, purpose="TREAT", view="coding"
    )
    return render(
        request,
        "coding/workbench.html",
        {
            **_code_entry(chart),
            **_abstract_context(exc),
            "abstract_values": abstract_values(chart, form),
        },
        block="abstract_form",
        status_code=exc.status_code,
    )


def _abstract_context(exc: AppError) -> dict[str, Any]:
    return {
        "abstract_error": forms.message(exc),
        "abstract_errors": _abstract_errors(exc),
        "abstract_open": True,
    }


@router.post("/work/{work_item_id}/abstract", response_class=HTMLResponse)
def abstract_page(
    request: Request,
    session: SessionDep,
    actor: CoderDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_abstract_failed))],
    work_item_id: RowId,
    admission_type: Annotated[str, Form(max_length=2)] = "",
    admission_source: Annotated[str, Form(max_length=2)] = "",
    discharge_status: Annotated[str, Form(max_length=2)] = "",
    admission_hour: Annotated[str, Form(max_length=2)] = "",
    attending_npi: Annotated[str, Form(max_length=10)] = "",
    operating_npi: Annotated[str, Form(max_length=10)] = "",
    admitting_diagnosis: Annotated[str, Form(max_length=8)] = "",
    birth_weight_grams: Annotated[str, Form(max_length=4)] = "",
    pd_code: Annotated[list[str] | None, Form(max_length=100)] = None,
    pd_date: Annotated[list[str] | None, Form(max_length=100)] = None,
) -> Response:
    """The workbench's abstract form: the fields it sends (a blank one is not entered; a
    PCS code with a blank date has none), the others kept. Refused: the form again with
    what was typed and the message at the field (in place for htmx, 422)."""
    fields: dict[str, Any] = {
        "admission_type": admission_type,
        "admission_source": admission_source,
        "discharge_status": discharge_status,
        "admission_hour": admission_hour,
        "attending_npi": attending_npi,
        "operating_npi": operating_npi,
        "admitting_diagnosis": admitting_diagnosis,
        "birth_weight_grams": birth_weight_grams,
        "procedure_dates": {
            code: when
            for code, when in zip(pd_code or [], pd_date or [], strict=False)
            if when.strip()
        },
    }
    try:
        abstract = Abstract.model_validate(fields)
    except ValidationError as exc:
        raise ValidationFailed("The abstract is not valid.", details=safe_errors(exc)) from None
    # Only the fields the form sent: the others are kept as they were.
    sent: FormData = request.state.form_data
    only = {name for name in ABSTRACT_FIELDS if name in sent}
    if "pd_code" in sent:
        only.add("procedure_dates")
    abstract_service.save_abstract(
        session, actor=actor, work_item_id=work_item_id, abstract=abstract, only=only
    )
    if not is_htmx(request):
        return RedirectResponse(f"/work/{work_item_id}", status_code=303)
    chart = service.open_chart(
        session, actor=actor, work_item_id=work_item_id, purpose="TREAT", view="coding"
    )
    page = render(
        request,
        "coding/workbench.html",
        {**_code_entry(chart), "abstract_saved": True},
        block="abstract_form",
    )
    # The code panel checks again (the discharge status may move the working DRG).
    page.headers["HX-Trigger"] = "abstract-saved"
    return page


@router.get(f"{API}/work/{{work_item_id}}", tags=["work"])
async def api_item(caller: CoderInStatementDep, work_item_id: RowId) -> JSONResponse:
    """The decrypted record of an item the caller holds, audited before it leaves.

    PostgreSQL with a coder's cookie session: one statement on the event loop (session
    check, lease lock, audit event, sealed chart; issue 23), then the same opening and
    answer as the ordinary path. A refusal there, a chart it does not open, a token or
    SQLite: the ordinary access rule and `open_chart` in one worker-thread call.
    """
    pool = async_pool()
    trip = caller.in_statement() if pool is not None else None
    if pool is not None and trip is not None:
        chart = await service.coding_chart_in_one_trip(pool, caller=trip, work_item_id=work_item_id)
        if chart is not None:
            caller.request.state.access_granted = True
            return _item_answer(chart)
    return await run_in_threadpool(_item_plain, caller, work_item_id)


def _item_plain(caller: PendingCheck, work_item_id: int) -> JSONResponse:
    with session_scope() as session:
        actor = caller.check(session)
        chart = service.open_chart(
            session, actor=actor, work_item_id=work_item_id, purpose="TREAT", view="coding"
        )
        return _item_answer(chart)


def _item_answer(chart: ChartView) -> JSONResponse:
    """The API's chart. Every part is already JSON (model_dump(mode="json")), so it is
    encoded once here: returned as a dict, FastAPI walked the whole record again
    (jsonable_encoder) first."""
    view = WorkItemView.of(chart.row).model_dump(mode="json")
    record = chart.record.model_dump(mode="json")
    record["codes"] = chart.codes.model_dump(mode="json")
    record["queries"] = [q.model_dump(mode="json") for q in chart.queries]
    record["providers"] = [p.model_dump(mode="json") for p in chart.providers]
    return JSONResponse(
        {
            **view,
            **record,
            "id": chart.item.id,
            "status": chart.item.status,
            "queue": view["queue"],
            "abstract": chart.abstract.model_dump(mode="json"),
            "drg": chart.drg.model_dump(mode="json") if chart.drg else None,
            "returned": _returned(chart),
        }
    )


def _returned(chart: ChartView) -> dict[str, Any] | None:
    """Why billing returned the item, and the payer's coded reasons if it was a denial."""
    back = chart.returned
    if back is None:
        return None
    denial = back.denial
    return {
        "at": back.at.isoformat(),
        "reason": back.reason,
        "denial": None
        if denial is None
        else {
            **denial.as_json(),
            "payer": denial.payer,
            "lines": [
                {
                    "line": ln.line,
                    "code": ln.code,
                    "charge": ln.charge,
                    "paid": ln.paid,
                    "adjustments": [
                        {
                            "group": a.group,
                            "reason": a.reason,
                            "amount": a.amount,
                            "description": a.description,
                        }
                        for a in ln.adjustments
                    ],
                    "remarks": [{"code": c, "description": d} for c, d in ln.remarks],
                }
                for ln in denial.lines
            ],
        },
    }


def _item_page(
    request: Request,
    session: Session,
    *,
    actor: Principal,
    work_item_id: int,
    query_error: AppError | None = None,
    query_form: dict[str, Any] | None = None,
    abstract_error: AppError | None = None,
    abstract_form: FormData | None = None,
) -> Response:
    page = service.item_page(session, actor=actor, work_item_id=work_item_id)
    chart = page.chart
    entry = _code_entry(chart) if chart else {}
    if chart and abstract_error is not None:  # a refused abstract: as typed, in the open
        entry.update(_abstract_context(abstract_error))
        if abstract_form is not None:
            entry["abstract_values"] = abstract_values(chart, abstract_form)
    error = query_error or abstract_error
    return render(
        request,
        "queue/item.html",
        {
            "row": page.row,
            "record": chart.record.model_dump(mode="json") if chart else None,
            "hold_reasons": get_settings().hold_reasons,
            "now": utcnow(),
            "query_error": forms.message(query_error) if query_error else None,
            "query_form": query_form or {},
            "qa_findings": chart.qa_findings if chart else [],
            "returned": page.returned,  # a returned item: why, beside Resume
            **entry,
            # The chargemaster lines a coder can pick for a procedure line (charge code).
            "chargemaster": cdm.pickable(session, on=utcnow().date()) if chart else [],
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/work/{work_item_id}", response_class=HTMLResponse)
def item_page(
    request: Request, session: SessionDep, actor: CoderDep, work_item_id: RowId
) -> Response:
    """The item page: the chart of a leased item beside its code entry panel."""
    return _item_page(request, session, actor=actor, work_item_id=work_item_id)


@router.post("/work/{work_item_id}/queries", response_class=HTMLResponse)
def query_compose_page(
    request: Request,
    session: SessionDep,
    actor: CoderDep,
    work_item_id: RowId,
    template: Annotated[str, Form(max_length=20)],
    question: Annotated[str, Form(max_length=2000)],
    provider: Annotated[str, Form(max_length=10)],
    options: Annotated[str, Form(max_length=3000)] = "",
    basis: Annotated[str, Form(max_length=30)] = "",
    indicator_document: Annotated[list[int] | None, Form()] = None,
    indicator_quote: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Ask the provider from the workbench; a refused query shows the chart again with the
    message and what was typed. Quotes are found verbatim in the chosen documents."""
    quotes = list(zip(indicator_document or [], indicator_quote or [], strict=False))
    kept: dict[str, Any] = {
        "template": template,
        "question": question,
        "provider": provider,
        "options": options,
        "basis": basis,
        "quotes": quotes,
    }
    forms.on_error(
        request,
        lambda req, s, exc, _form: _item_page(
            req, s, actor=actor, work_item_id=work_item_id, query_error=exc, query_form=kept
        ),
    )
    indicators = [{"document": doc, "quote": quote} for doc, quote in quotes if quote.strip()]
    raw = {
        "template": template,
        "question": question,
        "provider": provider,
        "options": [line.strip() for line in options.splitlines() if line.strip()],
        "basis": basis or None,
        "indicators": indicators,
    }
    try:
        data = QueryIn.model_validate(raw)
    except ValidationError as exc:
        raise ValidationFailed("The query is not valid.", details=safe_errors(exc)) from None
    queries_service.compose(session, actor=actor, work_item_id=work_item_id, data=data)
    return RedirectResponse("/work?queried=1", status_code=303)


@router.get("/work/{work_item_id}/codes", response_class=HTMLResponse)
def codes_fragment(
    request: Request, session: SessionDep, actor: CoderDep, work_item_id: RowId
) -> Response:
    """The code entry panel of the workbench, with the saved draft and its checks."""
    chart = service.open_chart(
        session, actor=actor, work_item_id=work_item_id, purpose="TREAT", view="coding", checks=True
    )
    return render(request, "coding/workbench.html", _code_entry(chart), block="code_entry")


def _findings_from_form(form: FormData) -> dict[str, FindingIn]:
    """The worksheet's category and comment per difference, by the difference's key."""

    def values(name: str) -> list[str]:
        return [v for v in form.getlist(name) if isinstance(v, str)]

    keys, categories, comments = (
        values("finding_key"),
        values("finding_category"),
        values("finding_comment"),
    )
    out: dict[str, FindingIn] = {}
    for n, key in enumerate(keys[:150]):
        category = categories[n].strip()[:40] if n < len(categories) else ""
        comment = comments[n].strip()[:500] if n < len(comments) else ""
        out[key[:100]] = FindingIn(category=category or None, comment=comment)
    return out


# The abstract fields the QA worksheet shows (the three NUBC selects).
QA_ABSTRACT_FIELDS = ("admission_type", "admission_source", "discharge_status")


def _abstract_from_form(form: FormData) -> dict[str, str | None] | None:
    """The worksheet's abstract selects (an inpatient stay's), None where the form has none."""
    if not any(name in form for name in QA_ABSTRACT_FIELDS):
        return None
    return {
        name: (str(form.get(name) or "").strip()[:2] or None)
        for name in QA_ABSTRACT_FIELDS
        if name in form
    }


def _qa_page(
    request: Request,
    session: Session,
    *,
    actor: Principal,
    work_item_id: int,
    codes: Codes | None = None,
    reason: str = "",
    kept: dict[str, FindingIn] | None = None,
    abstract_fields: dict[str, str | None] | None = None,
    error: AppError | None = None,
) -> Response:
    """The QA worksheet: the chart (audited view), the coder's codes to accept or edit, and
    the differences the edits make, each to file under an error category."""
    chart = service.open_chart(
        session, actor=actor, work_item_id=work_item_id, purpose="HOPERAT", view="qa"
    )
    abstract_after = chart.abstract
    if abstract_fields is not None:
        try:
            abstract_after = qa_service.merged_abstract(chart.abstract, abstract_fields)
        except AppError:
            abstract_after = chart.abstract  # the message says which field; shown as typed
    differences = (
        qa_diff.differences(
            chart.codes,
            codes or chart.codes,
            abstract_before=chart.abstract,
            abstract_after=abstract_after,
        )
        if codes is not None or abstract_fields is not None
        else []
    )
    # The DRG before and after the edits, and what the change is worth (weight × base rate).
    drg_after = None
    if differences and chart.inpatient:
        context = coding_service.claim_context(
            session, item=chart.item, record=chart.record, abstract=abstract_after
        )
        drg_after = coding_service.working_drg(codes or chart.codes, context)
    payment = (
        round((drg_after.weight - chart.drg.weight) * get_settings().qa_base_rate, 2)
        if drg_after and chart.drg and drg_after.weight is not None and chart.drg.weight is not None
        else None
    )
    kept = kept or {}
    shown = codes if codes is not None else chart.codes
    # The message of a difference without a category, at its row (details are by position).
    row_errors = {
        differences[d["loc"][1]].key: str(d.get("msg", ""))
        for d in (error.details if error else [])
        if isinstance(d, dict)
        and isinstance(d.get("loc"), list)
        and len(d["loc"]) == 3
        and d["loc"][0] == "findings"
        and isinstance(d["loc"][1], int)
        and d["loc"][1] < len(differences)
    }
    return render(
        request,
        "coding/qa_item.html",
        {
            "item": chart.item,
            "record": chart.record,
            "codes": shown,
            # The Description column: each code's title from the code sets, as the workbench.
            "titles": codesets.titles(session, codes=shown),
            "coder_codes": chart.codes,
            "inpatient": chart.inpatient,
            "drg": chart.drg,
            "drg_after": drg_after,
            "abstract": {**chart.abstract.model_dump(), **(abstract_fields or {})},
            "nubc": nubc,
            "payment": payment,
            "reason": reason,
            "differences": differences,
            "kept": kept,
            "row_errors": row_errors,
            "taxonomy": taxonomy(),
            "retrospective": qa_service.is_retrospective(session, work_item_id=work_item_id),
            "error": forms.message(error) if error else None,
            "errors": forms.field_errors(error),
        },
        status_code=error.status_code if error else 200,
    )


def _qa_failed(request: Request, session: Session, exc: AppError, form: FormData) -> Response:
    """The worksheet again with the reviewer's codes, categories and comments as typed."""
    try:
        codes: Codes | None = codes_from_form(form)
    except AppError:
        codes = None  # lines that cannot be read: the saved ones, with the message
    return _qa_page(
        request,
        session,
        actor=request.state.principal,
        work_item_id=int(request.path_params["work_item_id"]),
        codes=codes,
        reason=str(form.get("reason") or ""),
        kept=_findings_from_form(form),
        abstract_fields=_abstract_from_form(form),
        error=exc,
    )


@router.get("/qa/{work_item_id}", response_class=HTMLResponse)
def qa_item_page(
    request: Request, session: SessionDep, actor: SupervisorDep, work_item_id: RowId
) -> Response:
    """One sampled item: the chart (audited view) and the coder's codes, to accept or correct."""
    return _qa_page(request, session, actor=actor, work_item_id=work_item_id)


@router.post("/qa/{work_item_id}", response_class=HTMLResponse)
def qa_decide_page(
    request: Request,
    session: SessionDep,
    actor: SupervisorDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_qa_failed))],
    work_item_id: RowId,
    decision: Annotated[str, Form(max_length=10)],
    codes: CodesForm,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Accept, show the differences of the edits (preview), or save the corrections with a
    category per difference; a refusal shows the worksheet again, every input kept."""
    if decision not in ("accept", "correct", "preview"):
        raise ValidationFailed(
            "Accept or correct.", details=[{"loc": ["decision"], "msg": "accept|correct"}]
        )
    form = request.state.form_data  # parsed once, by ErrorPage
    keyed, abstract_fields = _findings_from_form(form), _abstract_from_form(form)
    if decision == "preview":
        return _qa_page(
            request,
            session,
            actor=actor,
            work_item_id=work_item_id,
            codes=codes,
            reason=reason,
            kept=keyed,
            abstract_fields=abstract_fields,
        )
    qa_service.decide(
        session,
        actor=actor,
        work_item_id=work_item_id,
        decision=decision,
        reason=reason,
        codes=codes if decision == "correct" else None,
        keyed=keyed,
        abstract_fields=abstract_fields if decision == "correct" else None,
    )
    return RedirectResponse("/qa", status_code=303)


# ---------------------------------------------------------------- break-glass


@router.post(
    f"{API}/work/{{work_item_id}}/emergency-access", tags=["work"], response_model=RecordView
)
def api_emergency_access(
    session: SessionDep,
    actor: CoderOrSupervisorDep,
    work_item_id: RowId,
    body: EmergencyAccessRequest,
) -> RecordView:
    """Open a chart outside the caller's own work, stating a reason; audited as emergency."""
    chart = service.open_chart(
        session,
        actor=actor,
        work_item_id=work_item_id,
        purpose="ETREAT",
        view="emergency",
        emergency_reason=body.reason,
    )
    return chart.record


@router.get("/emergency-access", response_class=HTMLResponse)
def emergency_form(request: Request, _: CoderOrSupervisorDep) -> Response:
    """The break-glass form: which item, and why."""
    return render(request, "records/emergency.html", {"record": None})


def _emergency_failed(
    request: Request, _session: Session, exc: AppError, form: FormData
) -> Response:
    """The break-glass form again with the item and reason as given, and why it failed."""
    return render(
        request,
        "records/emergency.html",
        {
            "record": None,
            "work_item_id": str(form.get("work_item_id") or ""),
            "reason": str(form.get("reason") or ""),
            "error": forms.message(exc),
            "errors": forms.field_errors(exc),
        },
        status_code=exc.status_code,
    )


@router.post("/emergency-access", response_class=HTMLResponse)
def emergency_open(
    request: Request,
    session: SessionDep,
    actor: CoderOrSupervisorDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_emergency_failed))],
    work_item_id: Annotated[int, Form(ge=1, le=MAX_ROW_ID)],
    reason: Annotated[str, Form(max_length=200)],
) -> Response:
    """Open the chart read-only after the caller stated a reason (audited, flagged)."""
    chart = service.open_chart(
        session,
        actor=actor,
        work_item_id=work_item_id,
        purpose="ETREAT",
        view="emergency",
        emergency_reason=reason,
    )
    return render(
        request,
        "records/emergency.html",
        {"record": chart.record.model_dump(mode="json"), "reason": reason, "now": utcnow()},
    )
