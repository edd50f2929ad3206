"""HTTP routes of the audit domain: compliance pages and /api/v1/audit JSON.

The API answers people with role `compliance` and tokens with scope `audit`; the pages are
for people with role `compliance`. MRNs travel only in request bodies on the pages (never
in a page URL); API.md's `patient=` query filter is the one contracted exception.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from sqlmodel import Session

from server.audit import activity, review
from server.audit import service as audit_service
from server.audit.schemas import AuditEventList, AuditEventView, VerifyView
from server.audit.search import PURPOSE
from server.auth.deps import (
    MAX_ROW_ID,
    AuditorDep,
    AuditorInStatementDep,
    ComplianceDep,
    PendingCheck,
    SessionDep,
)
from server.auth.principal import Principal
from server.db import async_pool, session_scope
from server.errors import AppError
from server.records import service as records_service
from server.reports.svg import Bar, bar_chart
from server.web import forms
from server.web.templates import is_htmx, render

router = APIRouter()

API = "/api/v1/audit"


# ---------------------------------------------------------------- API


@router.get(f"{API}/events", tags=["audit"], response_model=AuditEventList)
async def api_events(
    caller: AuditorInStatementDep,
    actor_name: Annotated[str | None, Query(alias="actor", max_length=100)] = None,
    patient: Annotated[str | None, Query(max_length=100, description="an MRN")] = None,
    work_item: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
    outcome: Annotated[str | None, Query(max_length=10)] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query()] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Search the audit log, newest first, with keyset pagination (audited).

    PostgreSQL with a compliance officer's cookie session: one statement on the event loop
    (session check, patient lookup, audit row, page; issue 23). A refusal there, a bad
    filter, a token or SQLite: the ordinary access rule and search in one worker-thread
    call. Serialized once, here (`response_model` stays for the OpenAPI schema).
    """
    flt = review.EventFilter(
        actor=actor_name,
        patient_mrn=patient,
        work_item=work_item,
        action=action,
        outcome=outcome,
        since=since,
        until=until,
    )
    pool = async_pool()
    trip = caller.in_statement() if pool is not None else None
    if pool is not None and trip is not None:
        try:
            checked, before = review.check_search(flt, limit=limit, cursor=cursor)
        except AppError:
            pass  # the ordinary path checks access first, then answers the 422
        else:
            page = await review.search_in_one_trip(
                pool, caller=trip, flt=checked, limit=limit, before=before
            )
            if isinstance(page, review.Page):
                caller.request.state.access_granted = True
                return _events_answer(page)
    return await run_in_threadpool(_events_plain, caller, flt, limit, cursor)


def _events_plain(
    caller: PendingCheck, flt: review.EventFilter, limit: int, cursor: str | None
) -> Response:
    with session_scope() as session:
        actor = caller.check(session)
        return _events_answer(
            review.search(session, actor=actor, flt=flt, limit=limit, cursor=cursor)
        )


def _events_answer(page: review.Page) -> Response:
    body = AuditEventList(
        items=[AuditEventView.of(e) for e in page.events], next_cursor=page.next_cursor
    )
    return Response(body.model_dump_json(), media_type="application/json")


@router.get(f"{API}/verify", tags=["audit"], response_model=VerifyView)
def api_verify(session: SessionDep, actor: AuditorDep) -> VerifyView:
    """Recompute the hash chain and check every signed checkpoint (audited)."""
    return VerifyView(**review.verify_log(session, actor=actor).as_json())


@router.get(f"{API}/export", tags=["audit"])
def api_export(
    session: SessionDep,
    actor: AuditorDep,
    format: Annotated[str, Query(max_length=10)] = "fhir",  # noqa: A002 - API.md's name
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> StreamingResponse:
    """Stream FHIR R4 AuditEvent NDJSON or CSV; the export is audited before it starts."""
    flt = review.check_export(format, since, until)
    review.record_export(session, actor=actor, fmt=format, flt=flt)
    media = "application/fhir+ndjson" if format == "fhir" else "text/csv; charset=utf-8"
    name = "audit-events." + ("ndjson" if format == "fhir" else "csv")
    return StreamingResponse(
        review.export_lines(format, flt),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# ---------------------------------------------------------------- pages


def _search_page(
    request: Request,
    session: Session,
    actor: Principal,
    flt: review.EventFilter,
    *,
    cursor: str | None = None,
    searched: bool = False,
    error: AppError | None = None,
    extra: dict[str, object] | None = None,
) -> Response:
    """The search form with `flt` filled in, and its results when `searched`.

    A failed search (bad filter) shows the form again with the message where the results
    go; htmx posts get only that results block.
    """
    page: review.Page | None = None
    if searched:
        page = review.search(session, actor=actor, flt=flt, limit=50, cursor=cursor)
    context = {
        "flt": flt,
        "page": page,
        "error": forms.message(error) if error else None,
        "actions": [a.value for a in audit_service.Action],
        "outcomes": [o.value for o in audit_service.Outcome],
        "one_day": timedelta(days=1),
        **(extra or {}),
    }
    block = "results" if request.method == "POST" and is_htmx(request) else None
    status = error.status_code if error else 200
    return render(request, "audit/search.html", context, block=block, status_code=status)


def _activity_charts(session: Session) -> dict[str, object]:
    """Views, refusals and break-glass per day (last 30 days): one chart per kind, so that
    no colour has to tell them apart, with the numbers in a table beside them."""
    report = activity.activity(session)
    charts = {
        kind: bar_chart(
            [Bar(d.day.strftime("%d %b"), d.counts[kind]) for d in report.days],
            title=f"{title} per day, last {len(report.days)} days",
            x_label="Day (hospital time)",
            y_label=f"{title} (count)",
            chart_id=f"activity-{kind.replace('_', '-')}",
            width=960,
            height=220,
            whole=True,
            label_every=5,
        )
        for kind, title in activity.KINDS.items()
    }
    return {"activity": report, "activity_charts": charts, "activity_kinds": activity.KINDS}


@router.get("/compliance", response_class=HTMLResponse)
def compliance_home(request: Request, session: SessionDep, actor: ComplianceDep) -> Response:
    """The audit log search form (results come from a POST: an MRN never enters a URL), and
    activity over time (views, refusals, break-glass per day) as charts with their numbers."""
    return _search_page(
        request, session, actor, review.EventFilter(), extra=_activity_charts(session)
    )


def _dt(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise AppError(
            "Dates are YYYY-MM-DD or YYYY-MM-DDTHH:MM.", status_code=422, code="bad_date"
        ) from None


@router.post("/compliance/search", response_class=HTMLResponse)
def compliance_search(
    request: Request,
    session: SessionDep,
    actor: ComplianceDep,
    actor_name: Annotated[str, Form(alias="actor", max_length=100)] = "",
    mrn: Annotated[str, Form(max_length=100)] = "",
    work_item: Annotated[str, Form(max_length=20)] = "",
    action: Annotated[str, Form(max_length=40)] = "",
    outcome: Annotated[str, Form(max_length=10)] = "",
    since: Annotated[str, Form(max_length=40)] = "",
    until: Annotated[str, Form(max_length=40)] = "",
    cursor: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Search results with keyset pagination ("Older events" posts the cursor back)."""
    flt = review.EventFilter(actor=actor_name, patient_mrn=mrn, action=action, outcome=outcome)
    forms.on_error(request, lambda req, own, exc, _: _search_page(req, own, actor, flt, error=exc))
    _fill_filter(flt, work_item=work_item, since=since, until=until)
    return _search_page(request, session, actor, flt, cursor=cursor or None, searched=True)


def _fill_filter(flt: review.EventFilter, *, work_item: str, since: str, until: str) -> None:
    """The form's work item and dates into `flt` (a date as "To" includes that whole day)."""
    if work_item.strip():
        if not work_item.strip().isdigit() or not 1 <= int(work_item) <= MAX_ROW_ID:
            raise AppError("A work item is a number.", status_code=422, code="bad_work_item")
        flt.work_item = int(work_item)
    flt.since, flt.until = _dt(since), _dt(until)
    if flt.until is not None and len(until.strip()) == 10:
        flt.until += timedelta(days=1)  # "To" a date includes that whole day


@router.post("/compliance/export")
def compliance_export(
    request: Request,
    session: SessionDep,
    actor: ComplianceDep,
    format: Annotated[str, Form(max_length=10)] = "csv",  # noqa: A002 - as the API names it
    actor_name: Annotated[str, Form(alias="actor", max_length=100)] = "",
    mrn: Annotated[str, Form(max_length=100)] = "",
    work_item: Annotated[str, Form(max_length=20)] = "",
    action: Annotated[str, Form(max_length=40)] = "",
    outcome: Annotated[str, Form(max_length=10)] = "",
    since: Annotated[str, Form(max_length=40)] = "",
    until: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Export the search's results (every filter) as CSV or FHIR NDJSON; audited first.

    A form post, like the search, so that an MRN never enters a URL.
    """
    flt = review.EventFilter(actor=actor_name, patient_mrn=mrn, action=action, outcome=outcome)
    forms.on_error(request, lambda req, own, exc, _: _search_page(req, own, actor, flt, error=exc))
    _fill_filter(flt, work_item=work_item, since=since, until=until)
    # "To" arrives here as the exact time the search used (the results form's hidden field).
    review.check_export(format, flt.since, flt.until)
    flt = review.check_filter(flt)
    review.record_export(session, actor=actor, fmt=format, flt=flt)
    media = "application/fhir+ndjson" if format == "fhir" else "text/csv; charset=utf-8"
    name = "audit-events." + ("ndjson" if format == "fhir" else "csv")
    return StreamingResponse(
        review.export_lines(format, flt),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/compliance/patient", response_class=HTMLResponse)
def compliance_patient(
    request: Request,
    session: SessionDep,
    actor: ComplianceDep,
    mrn: Annotated[str, Form(min_length=1, max_length=100)],
) -> Response:
    """Per-patient access report: everyone who touched this patient's records."""
    report = review.patient_report(session, actor=actor, mrn=mrn)
    resp = render(request, "audit/patient.html", {"report": report})
    return resp


@router.get("/compliance/patient", response_class=HTMLResponse)
def compliance_patient_form(request: Request, _: ComplianceDep) -> Response:
    """The MRN form of the per-patient access report."""
    return render(request, "audit/patient.html", {"report": None})


@router.post("/compliance/identity/{patient_id}", response_class=HTMLResponse)
def compliance_identity(
    request: Request,
    session: SessionDep,
    actor: ComplianceDep,
    patient_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    purpose: Annotated[str, Form(max_length=20)] = PURPOSE,
) -> Response:
    """A patient's name and MRN beside their internal id, on demand (htmx); the lookup is
    audited (`identity-lookup`, with the purpose the officer picked, default HCOMPL) before
    anything is decrypted; a purpose not in the legend is refused (422, audited)."""
    who = records_service.patient_identity(
        session, actor=actor, patient_id=patient_id, purpose=purpose
    )
    return render(request, "audit/_identity.html", {"who": who})


@router.get("/compliance/users/{username}", response_class=HTMLResponse)
def compliance_user(
    request: Request,
    session: SessionDep,
    actor: ComplianceDep,
    username: str,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> Response:
    """Per-user activity report over the last `days` days."""
    since, until = review.default_window(days)
    report = review.user_report(session, actor=actor, username=username, since=since, until=until)
    resp = render(request, "audit/user.html", {"report": report, "days": days})
    return resp


def _flags_page(
    request: Request,
    session: Session,
    actor: Principal,
    *,
    days: int,
    show: str = "all",
    message: str | None = None,
    error: AppError | None = None,
) -> Response:
    since, until = review.default_window(days)
    flags = review.with_cases(
        session, review.review_flags(session, actor=actor, since=since, until=until)
    )
    if show in review.CASE_STATUSES:
        flags = [f for f in flags if f.status == show]
    steps = review.case_steps(session, case_ids=[f.case.id for f in flags if f.case and f.case.id])
    return render(
        request,
        "audit/flags.html",
        {
            "flags": flags,
            "steps": steps,
            "days": days,
            "show": show,
            "statuses": review.CASE_STATUSES,
            "titles": review.FLAG_TITLES,
            "since": since,
            "message": message,
            "error": forms.message(error) if error else None,
            "fields": forms.field_errors(error),
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/compliance/flags", response_class=HTMLResponse)
def compliance_flags(
    request: Request,
    session: SessionDep,
    actor: ComplianceDep,
    days: Annotated[int, Query(ge=1, le=92)] = 7,
    show: Annotated[str, Query(max_length=20)] = "all",
    done: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    """Flags for review, each a case: emergency access, access outside leases, odd hours,
    refusals; filter by case status."""
    message = "Review saved." if done else None
    return _flags_page(request, session, actor, days=days, show=show, message=message)


@router.post("/compliance/flags/review", response_class=HTMLResponse)
def compliance_flag_review(
    request: Request,
    session: SessionDep,
    actor: ComplianceDep,
    flag_key: Annotated[str, Form(min_length=3, max_length=200)],
    kind: Annotated[str, Form(max_length=30)],
    subject: Annotated[str, Form(max_length=100)],
    status: Annotated[str, Form(max_length=20)],
    note: Annotated[str, Form(max_length=1000)] = "",
    work_item: Annotated[int | None, Form(ge=1, le=MAX_ROW_ID)] = None,
    days: Annotated[int, Form(ge=1, le=92)] = 7,
) -> Response:
    """Mark a flag reviewed (with a note), dismissed, escalated or open again; audited."""
    forms.on_error(
        request, lambda req, own, exc, _: _flags_page(req, own, actor, days=days, error=exc)
    )
    review.review_flag(
        session,
        actor=actor,
        key=flag_key,
        kind=kind,
        subject=subject,
        work_item_id=work_item,
        status=status,
        note=note,
    )
    return RedirectResponse(f"/compliance/flags?days={days}&done=1", status_code=303)


@router.get("/compliance/verify", response_class=HTMLResponse)
def compliance_verify(request: Request, session: SessionDep, actor: ComplianceDep) -> Response:
    """The chain's verification status (recomputed now); htmx refreshes the status box."""
    report = review.verify_log(session, actor=actor)
    block = "verify_status" if is_htmx(request) else None
    return render(
        request,
        "audit/verify.html",
        {"report": report, "checked_at": datetime.now().astimezone()},
        block=block,
    )
