"""HTTP routes of physician queries: the API, and the provider's pages (list, read, answer).

The coder composes a query on the workbench (its form route is in workbench/router.py, since
a failed form shows the chart again) or through `POST /api/v1/work/{id}/queries` here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlmodel import Session

from server.auth.deps import (
    CoderDep,
    ProviderDep,
    QueryReaderDep,
    RowId,
    SessionDep,
    SupervisorDep,
)
from server.errors import AppError, ValidationFailed
from server.queries import reports, service
from server.queries.schemas import AnswerIn, QueryCreated, QueryIn, QueryView
from server.records.schemas import safe_errors
from server.web import forms
from server.web.templates import render

router = APIRouter()

API = "/api/v1"
NpiQuery = Annotated[str | None, Query(pattern=r"^[0-9]{10}$")]


@router.post(f"{API}/work/{{work_item_id}}/queries", tags=["queries"], response_model=QueryCreated)
def api_compose(
    session: SessionDep, actor: CoderDep, work_item_id: RowId, body: QueryIn
) -> QueryCreated:
    """Ask a provider of the encounter a compliant query; the item goes on hold."""
    query, item = service.compose(session, actor=actor, work_item_id=work_item_id, data=body)
    assert query.id is not None  # noqa: S101
    return QueryCreated(
        id=query.id, status=query.status, work_item=work_item_id, item_status=item.status
    )


@router.get(f"{API}/queries", tags=["queries"])
def api_list(
    session: SessionDep,
    actor: QueryReaderDep,
    status: Annotated[str | None, Query(max_length=20)] = None,
    provider: NpiQuery = None,
    cursor: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Queries, newest first (ids, people, times; nothing sealed). A provider sees their own."""
    items, next_id = service.list_queries(
        session, actor=actor, status=status, provider=provider, cursor=cursor, limit=limit
    )
    return {
        "items": [i.model_dump(mode="json") for i in items],
        "next_cursor": str(next_id) if next_id is not None else None,
    }


@router.get(f"{API}/queries/{{query_id}}", tags=["queries"], response_model=QueryView)
def api_get(session: SessionDep, actor: QueryReaderDep, query_id: RowId) -> QueryView:
    """One query with its quoted indicators and answer (audited as query-view)."""
    return service.get_query(session, actor=actor, query_id=query_id)


@router.post(f"{API}/queries/{{query_id}}/answer", tags=["queries"], response_model=QueryView)
def api_answer(
    session: SessionDep, actor: ProviderDep, query_id: RowId, body: AnswerIn
) -> QueryView:
    """The provider answers their own open query, signed with a current TOTP code."""
    return service.answer(session, actor=actor, query_id=query_id, data=body)


@router.get(f"{API}/reports/queries", tags=["reports"], response_model=reports.QueryReport)
def api_report(
    session: SessionDep,
    _: SupervisorDep,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> reports.QueryReport:
    """Open queries by provider and age; answer turnaround (median, p90) in [since, until)."""
    return reports.query_report(session, since=_utc(since), until=_utc(until))


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


# ---------------------------------------------------------------- pages


@router.get("/reports/queries", response_class=HTMLResponse)
def report_page(request: Request, session: SessionDep, _: SupervisorDep) -> Response:
    """The query report: a bar per provider (open queries by age), the numbers beside it."""
    report = reports.query_report(session)
    most = max((r.open for r in report.open_by_provider), default=0)
    return render(
        request,
        "queries/report.html",
        {"report": report, "most": most, "labels": [b[0] for b in reports.AGE_BUCKETS]},
    )


@router.get("/reports/queries.csv")
def report_csv(session: SessionDep, _: SupervisorDep) -> Response:
    """The open-queries-by-provider table as a CSV download."""
    return Response(
        reports.report_csv(reports.query_report(session)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="physician-queries.csv"'},
    )


@router.get("/queries", response_class=HTMLResponse)
def queries_page(
    request: Request,
    session: SessionDep,
    actor: QueryReaderDep,
    status: Annotated[str | None, Query(max_length=20)] = "open",
) -> Response:
    """The list of queries: a provider's own (open first), a coder's, or all (supervisors)."""
    chosen = status or None
    items, _ = service.list_queries(session, actor=actor, status=chosen, limit=200)
    return render(
        request,
        "queries/list.html",
        {"items": items, "status": chosen or "", "statuses": service.STATUSES},
    )


def _query_page(
    request: Request,
    session: Session,
    *,
    query_id: int,
    error: AppError | None = None,
    submitted: dict[str, str] | None = None,
) -> Response:
    principal = getattr(request.state, "principal", None)
    assert principal is not None  # noqa: S101 - the route's access rule set it
    query = service.get_query(session, actor=principal, query_id=query_id)
    return render(
        request,
        "queries/query.html",
        {
            "query": query,
            "error": forms.message(error) if error else None,
            "error_fields": {
                str(d["loc"][0]) for d in (error.details if error else []) if d.get("loc")
            },
            "submitted": submitted or {},
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/queries/{query_id}", response_class=HTMLResponse)
def query_page(
    request: Request, session: SessionDep, _: QueryReaderDep, query_id: RowId
) -> Response:
    """One query: the question, the quoted indicators, and (for its provider) the answer form."""
    return _query_page(request, session, query_id=query_id)


@router.post("/queries/{query_id}/answer", response_class=HTMLResponse)
def answer_page(
    request: Request,
    session: SessionDep,
    actor: ProviderDep,
    query_id: RowId,
    option: Annotated[str | None, Form(max_length=200)] = None,
    text: Annotated[str | None, Form(max_length=4000)] = None,
    totp: Annotated[str | None, Form(max_length=10)] = None,
) -> Response:
    """Answer from the query page; a refused answer shows the page again at the field."""
    kept = {"option": option or "", "text": text or ""}
    forms.on_error(
        request,
        lambda req, s, exc, _form: _query_page(
            req, s, query_id=query_id, error=exc, submitted=kept
        ),
    )
    try:
        data = AnswerIn(option=option or None, text=text or None, totp=totp or None)
    except ValidationError as exc:
        raise ValidationFailed("The answer is not valid.", details=safe_errors(exc)) from None
    service.answer(session, actor=actor, query_id=query_id, data=data)
    return RedirectResponse("/queries?answered=1", status_code=303)
