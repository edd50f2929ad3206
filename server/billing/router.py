"""HTTP routes of the billing domain: biller pages and /api/v1 JSON (biller or billing token)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session
from starlette.datastructures import FormData

from server.auth.deps import BillerDep, BillingDep, RowId, SessionDep
from server.billing import remittance, service, x835
from server.billing.schemas import (
    BatchRequest,
    BilledItem,
    BilledList,
    BilledRequest,
    ReadyEncounter,
    ReadyItem,
    ReadyList,
    ReturnRequest,
)
from server.errors import AppError, ValidationFailed
from server.models import Queue, Status
from server.web import forms
from server.web.templates import render

router = APIRouter()


API = "/api/v1/billing"


def _ready_item(row: service.ReadyRow) -> ReadyItem:
    e = row.encounter
    assert row.item.id is not None  # noqa: S101
    return ReadyItem(
        id=row.item.id,
        queue=row.queue,
        encounter=ReadyEncounter(
            class_=e.encounter_class,
            facility=e.facility,
            service_type=e.service_type,
            payer_class=e.payer_class,
            start=e.start_at,
            end=e.end_at,
        ),
        coded_by=row.coded_by,
        coded_at=row.item.coded_at,
    )


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise ValidationFailed("Bad cursor.", details=[{"loc": ["cursor"], "msg": "not a cursor"}])
    return int(cursor)


@router.get(
    f"{API}/ready", tags=["billing"], response_model=ReadyList, response_model_by_alias=True
)
def api_ready(
    session: SessionDep,
    _: BillingDep,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ReadyList:
    """Coded items ready to bill, oldest first (keyset pagination)."""
    rows, next_cursor = service.ready(session, cursor=_cursor(cursor), limit=limit)
    return ReadyList(
        items=[_ready_item(r) for r in rows],
        next_cursor=str(next_cursor) if next_cursor is not None else None,
    )


@router.get(
    f"{API}/{{work_item_id}}/claim",
    tags=["billing"],
    responses={200: {"content": {m: {} for m in service.FORMATS.values()}}},
)
def api_claim(
    session: SessionDep,
    actor: BillingDep,
    work_item_id: RowId,
    format: Annotated[str, Query(max_length=10)] = "x12",  # noqa: A002 - the contract's name
) -> Response:
    """The claim: X12 837P/837I, FHIR R4 Claim or CSV (audited as claim-export)."""
    text = service.export(session, actor=actor, work_item_id=work_item_id, fmt=format)
    ext = {"x12": "x12", "fhir": "json", "csv": "csv"}[format]
    return Response(
        content=text,
        media_type=service.FORMATS[format],
        headers={
            "Content-Disposition": f'attachment; filename="claim-{work_item_id}.{ext}"',
        },
    )


def _batch_response(batch: service.Batch) -> Response:
    return Response(
        content=batch.text,
        media_type=service.FORMATS["x12"],
        headers={
            "Content-Disposition": f'attachment; filename="interchange-{batch.interchange}.x12"',
            "X-Interchange-Control": str(batch.interchange),
            "X-Claims": ",".join(f"{i}={n}" for i, n in batch.claims),
            "X-Skipped-Items": ",".join(str(i) for i in batch.skipped),
        },
    )


@router.post(
    f"{API}/batch",
    tags=["billing"],
    responses={200: {"content": {service.FORMATS["x12"]: {}}}},
)
def api_batch(session: SessionDep, actor: BillingDep, body: BatchRequest) -> Response:
    """Selected claims (or every claim coded on a day) as one X12 interchange; each is
    marked billed under its patient control number (audited as claim-export and billed)."""
    batch = service.batch_export(session, actor=actor, work_item_ids=body.items, day=body.date)
    return _batch_response(batch)


def _billed_item(row: service.BilledRow) -> BilledItem:
    r, e = row.record, row.encounter
    assert r.id is not None  # noqa: S101
    return BilledItem(
        id=r.work_item_id,
        claim_number=r.claim_number,
        interchange=r.interchange,
        billed_by=r.billed_by,
        billed_at=r.billed_at,
        class_=e.encounter_class,
        facility=e.facility,
        start=e.start_at,
    )


@router.get(
    f"{API}/history", tags=["billing"], response_model=BilledList, response_model_by_alias=True
)
def api_history(
    session: SessionDep,
    _: BillingDep,
    q: Annotated[str | None, Query(max_length=50)] = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> BilledList:
    """Billed claims, newest first; `q` finds a claim number, item id or interchange."""
    rows, next_cursor = service.billed_history(session, q=q, cursor=_cursor(cursor), limit=limit)
    return BilledList(
        items=[_billed_item(r) for r in rows],
        next_cursor=str(next_cursor) if next_cursor is not None else None,
    )


@router.post(f"{API}/{{work_item_id}}/billed", tags=["billing"])
def api_billed(
    session: SessionDep, actor: BillingDep, work_item_id: RowId, body: BilledRequest
) -> dict[str, Any]:
    """Mark the item billed under the claim number."""
    item = service.mark_billed(
        session, actor=actor, work_item_id=work_item_id, claim_number=body.claim_number
    )
    return {"id": item.id, "status": item.status, "claim_number": body.claim_number}


@router.post(f"{API}/{{work_item_id}}/return", tags=["billing"])
def api_return(
    session: SessionDep, actor: BillingDep, work_item_id: RowId, body: ReturnRequest
) -> dict[str, Any]:
    """Send the item back to the coder who coded it, with the reason (with no coder on
    record, to a queue by the denials rules: `queue` names it)."""
    item = service.return_to_coder(
        session, actor=actor, work_item_id=work_item_id, reason=body.reason
    )
    queue = session.get(Queue, item.queue_id) if item.status == Status.ready else None
    return {"id": item.id, "status": item.status, "queue": queue.name if queue else None}


# ---------------------------------------------------------------- remittances (X12 835)

REMIT_STATUSES = ("paid", "denied", "partial", "reversed", "unmatched")
REMIT_PAGE = 100  # remittance claims per page, newest first


X12_TYPES = ("application/edi-x12", "text/plain")


async def x12_body(request: Request) -> bytes:
    """The raw request body of an X12 post (over CHARTDESK_MAX_BODY_BYTES: 413 already)."""
    return await request.body()


X12Body = Annotated[bytes, Depends(x12_body)]


@router.post(
    f"{API}/remittance",
    tags=["billing"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string"}} for t in X12_TYPES},
        }
    },
)
def api_remittance(session: SessionDep, actor: BillingDep, body: X12Body) -> dict[str, Any]:
    """Post an X12 835 (005010X221A1); the same trace number again changes nothing."""
    results = remittance.post(session, actor=actor, text=_text(body))
    return {
        "claims": [c.as_json() for r in results for c in r.claims],
        "duplicate": all(r.duplicate for r in results),
        "message": " ".join(r.message for r in results),
        "remittances": [
            {"trace_number": r.trace_number, "duplicate": r.duplicate} for r in results
        ],
    }


def _text(body: bytes) -> str:
    if not body.strip():
        raise ValidationFailed(
            "Send the 835 as the request body.", details=[{"loc": ["body"], "msg": "empty"}]
        )
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        raise ValidationFailed(
            "An 835 is ASCII text.", details=[{"loc": ["body"], "msg": "not ASCII"}]
        ) from None


@router.get(f"{API}/remittance/claims", tags=["billing"])
def api_remittance_claims(
    session: SessionDep,
    _: BillingDep,
    status: Annotated[str | None, Query(max_length=10)] = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Stored remittance claims, oldest first (`status=unmatched` for those to follow up)."""
    if status is not None and status not in REMIT_STATUSES:
        raise ValidationFailed(
            "Unknown status.", details=[{"loc": ["status"], "msg": "|".join(REMIT_STATUSES)}]
        )
    after = _cursor(cursor) or 0
    found = remittance.claims_of(session, status=status, after=after, limit=limit + 1)
    more = len(found) > limit
    found = found[:limit]
    return {
        "items": [c.as_json() for c in found],
        "next_cursor": str(found[-1].id) if more else None,
    }


def _remit_page(
    request: Request,
    session: Session,
    *,
    status: str | None = None,
    before: int | None = None,
    results: list[remittance.PostResult] | None = None,
    error: AppError | None = None,
    text: str = "",
) -> Response:
    found = remittance.claims_of(session, status=status, before=before, limit=REMIT_PAGE + 1)
    older = found[0].id if len(found) > REMIT_PAGE else None  # oldest on this page
    claims = list(reversed(found[-REMIT_PAGE:]))  # newest first
    return render(
        request,
        "billing/remittance.html",
        {
            "claims": claims,
            "older": claims[-1].id if older is not None and claims else None,
            "newer": before is not None,
            "status": status,
            "statuses": REMIT_STATUSES,
            "results": results or [],
            "error": forms.message(error) if error else None,
            "errors": forms.field_errors(error),
            "text": text,
            "carc": x835.carc(),
            "rarc": x835.rarc(),
        },
        status_code=error.status_code if error else 200,
    )


def _remit_failed(request: Request, session: Session, exc: AppError, form: FormData) -> Response:
    """The upload page again with the message at the field and the pasted text kept."""
    text = form.get("text")
    return _remit_page(request, session, error=exc, text=text if isinstance(text, str) else "")


@router.get("/billing/remittance", response_class=HTMLResponse)
def remittance_page(
    request: Request,
    session: SessionDep,
    _: BillerDep,
    status: Annotated[str | None, Query(max_length=10)] = None,
    before: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Upload an 835; the payers' answers, newest first by pages (`before`: older than that
    claim), unmatched ones to follow up."""
    return _remit_page(
        request,
        session,
        status=status if status in REMIT_STATUSES else None,
        before=int(before) if before and before.isdigit() else None,
    )


@router.post("/billing/remittance", response_class=HTMLResponse)
def remittance_upload(
    request: Request,
    session: SessionDep,
    actor: BillerDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_remit_failed))],
    file: Annotated[UploadFile | None, File()] = None,
    text: Annotated[str, Form(max_length=remittance.MAX_BYTES)] = "",
) -> Response:
    """Post an uploaded (or pasted) 835 and show what it did."""
    raw = file.file.read(remittance.MAX_BYTES + 1) if file is not None and file.filename else b""
    body = raw or text.encode("utf-8", "replace")
    if not body.strip():  # the API's wording ("the request body") means nothing on this page
        raise ValidationFailed(
            "Choose an 835 file, or paste one.",
            details=[{"loc": ["body"], "msg": "Choose an 835 file, or paste one."}],
        )
    results = remittance.post(session, actor=actor, text=_text(body))
    return _remit_page(request, session, results=results)


# ---------------------------------------------------------------- biller pages


@router.get("/billing", response_class=HTMLResponse)
def billing_page(
    request: Request,
    session: SessionDep,
    _: BillerDep,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The biller's list of items ready to bill."""
    return _ready_page(request, session, message=_MESSAGES.get(done or ""))


_MESSAGES = {
    "billed": "Marked billed.",
    "returned": "Returned to the coder.",
    "queued": "No coder on record: sent to a denials queue by the routing rules.",
    "sent": "Sent: the interchange file is downloaded and its claims are marked billed "
    "(see Billed history).",
}


def _ready_page(
    request: Request,
    session: Session,
    *,
    message: str | None = None,
    error: AppError | None = None,
    form: FormData | None = None,
) -> Response:
    rows, _next = service.ready(session, limit=service.MAX_BATCH)
    picked = [str(v) for v in (form.getlist("items") if form else [])]
    selected = {int(v) for v in picked if v.isdigit()}
    return render(
        request,
        "billing/ready.html",
        {
            "rows": rows,
            "message": message,
            "error": forms.message(error) if error else None,
            "selected": selected,
            "day": (form.get("date") if form else None) or "",
            "today": date.today().isoformat(),  # noqa: DTZ011 - a default for the field
        },
        status_code=error.status_code if error else 200,
    )


def _batch_failed(request: Request, session: Session, exc: AppError, form: FormData) -> Response:
    return _ready_page(request, session, error=exc, form=form)


@router.post("/billing/batch", response_class=HTMLResponse)
def batch_page(
    session: SessionDep,
    actor: BillerDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_batch_failed))],
    items: Annotated[list[int] | None, Form()] = None,
    day: Annotated[date | None, Form(alias="date")] = None,
    scope: Annotated[str, Form(max_length=10, pattern="^(selected|day)$")] = "selected",
) -> Response:
    """The biller's batch export: the checked claims, or every claim coded on a day."""
    if scope == "day":
        if day is None:
            raise ValidationFailed(
                "Give the day the claims were coded.",
                details=[{"loc": ["date"], "msg": "required"}],
            )
        batch = service.batch_export(session, actor=actor, day=day)
    else:
        batch = service.batch_export(session, actor=actor, work_item_ids=items or [])
    return _batch_response(batch)


@router.get("/billing/history", response_class=HTMLResponse)
def history_page(
    request: Request,
    session: SessionDep,
    _: BillerDep,
    q: Annotated[str | None, Query(max_length=50)] = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Billed claims with their claim numbers and interchanges; search by claim number."""
    rows, next_cursor = service.billed_history(session, q=q, cursor=_cursor(cursor), limit=50)
    return render(
        request,
        "billing/history.html",
        {"rows": rows, "q": q or "", "next_cursor": next_cursor},
    )


@router.get("/billing/{work_item_id}", response_class=HTMLResponse)
def claim_page(
    request: Request,
    session: SessionDep,
    actor: BillerDep,
    work_item_id: RowId,
) -> Response:
    """The claim for the biller: patient, payer, dates, lines and total, edit status, and the
    837 as it will be sent beside it (an audited view of the record)."""
    page = service.claim_page(session, actor=actor, work_item_id=work_item_id)
    return render(request, "billing/claim.html", {"item_id": work_item_id, "page": page})


def _claim_failed(request: Request, session: Session, exc: AppError, form: FormData) -> Response:
    """The claim page again, the message in the form that failed (Mark billed or Return to
    coder) at its field, and what the biller typed kept."""
    work_item_id = int(request.path_params["work_item_id"])
    page = service.claim_page(session, actor=request.state.principal, work_item_id=work_item_id)
    failed = "billed" if request.url.path.endswith("/billed") else "return"
    return render(
        request,
        "billing/claim.html",
        {
            "item_id": work_item_id,
            "page": page,
            "failed": failed,
            "error": forms.message(exc),
            "errors": forms.field_errors(exc),
            "typed": {k: v for k, v in form.items() if k in ("claim_number", "reason")},
        },
        status_code=exc.status_code,
    )


@router.post("/billing/{work_item_id}/billed", response_class=HTMLResponse)
def billed_page(
    session: SessionDep,
    actor: BillerDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_claim_failed))],
    work_item_id: RowId,
    claim_number: Annotated[str, Form(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9._/-]+$")],
) -> Response:
    """Mark billed from the claim page."""
    service.mark_billed(session, actor=actor, work_item_id=work_item_id, claim_number=claim_number)
    return RedirectResponse("/billing?done=billed", status_code=303)


@router.post("/billing/{work_item_id}/return", response_class=HTMLResponse)
def return_page(
    session: SessionDep,
    actor: BillerDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_claim_failed))],
    work_item_id: RowId,
    reason: Annotated[str, Form(min_length=1, max_length=500)],
) -> Response:
    """Return to the coder from the claim page."""
    item = service.return_to_coder(session, actor=actor, work_item_id=work_item_id, reason=reason)
    done = "queued" if item.status == Status.ready else "returned"
    return RedirectResponse(f"/billing?done={done}", status_code=303)
