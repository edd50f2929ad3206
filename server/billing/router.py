"""HTTP routes of the billing domain: biller pages and /api/v1 JSON (biller or billing token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from server.auth.deps import BillerDep, BillingDep, RowId, SessionDep
from server.billing import service
from server.billing.schemas import (
    BilledRequest,
    ReadyEncounter,
    ReadyItem,
    ReadyList,
    ReturnRequest,
)
from server.errors import ValidationFailed
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
    """Send the item back to the coder who coded it, with the reason."""
    item = service.return_to_coder(
        session, actor=actor, work_item_id=work_item_id, reason=body.reason
    )
    return {"id": item.id, "status": item.status}


# ---------------------------------------------------------------- biller pages


@router.get("/billing", response_class=HTMLResponse)
def billing_page(
    request: Request,
    session: SessionDep,
    _: BillerDep,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The biller's list of items ready to bill."""
    rows, _next = service.ready(session, limit=200)
    messages = {"billed": "Marked billed.", "returned": "Returned to the coder."}
    return render(
        request,
        "billing/ready.html",
        {"rows": rows, "message": messages.get(done or "")},
    )


@router.get("/billing/{work_item_id}", response_class=HTMLResponse)
def claim_page(
    request: Request,
    session: SessionDep,
    actor: BillerDep,
    work_item_id: RowId,
) -> Response:
    """Claim preview (the 837 as it will be sent), export links, mark billed, return."""
    claim, checks = service.checked_claim(session, actor=actor, work_item_id=work_item_id)
    preview = service.render_claim(claim, "x12")
    return render(
        request,
        "billing/claim.html",
        {"item_id": work_item_id, "claim": claim, "preview": preview, "checks": checks},
    )


@router.post("/billing/{work_item_id}/billed", response_class=HTMLResponse)
def billed_page(
    session: SessionDep,
    actor: BillerDep,
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
    work_item_id: RowId,
    reason: Annotated[str, Form(min_length=1, max_length=500)],
) -> Response:
    """Return to the coder from the claim page."""
    service.return_to_coder(session, actor=actor, work_item_id=work_item_id, reason=reason)
    return RedirectResponse("/billing?done=returned", status_code=303)
