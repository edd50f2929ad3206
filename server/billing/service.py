"""The billing queue: coded items ready to bill, claim exports, billed and returned.

Claims are built from the record opened through `records.open_record(view="billing")`
(audited there as a view) and the code lines; each export is audited as `claim-export`
with the format only. Marking billed stores the payer's claim number; returning sends the
item back to the coder who coded it, first in their list; the biller's reason is sealed
under the encounter's data key (it may name the patient).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.billing import x12
from server.coding import abstract as abstract_service
from server.coding import service as coding_service
from server.config import Settings, get_settings
from server.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from server.models import (
    ClaimRecord,
    ClaimReturn,
    Encounter,
    EncounterProvider,
    Queue,
    Status,
    User,
    WorkItem,
)
from server.queue import service as queue_service
from server.records import service as records_service
from server.records.service import ItemKey

FORMATS = {
    "x12": "application/edi-x12",
    "fhir": "application/fhir+json",
    "csv": "text/csv; charset=utf-8",
}
PURPOSE = "HPAYMT"


@dataclass
class ReadyRow:
    """An item ready to bill, as the list shows it (no patient data)."""

    item: WorkItem
    queue: str
    encounter: Encounter
    coded_by: str | None


def ready(
    session: Session, *, cursor: int | None = None, limit: int = 50
) -> tuple[list[ReadyRow], int | None]:
    """Items ready for billing, oldest coded first; keyset pagination by id."""
    stmt = (
        select(WorkItem, Queue.name, Encounter, User.username)
        .join(Queue, col(Queue.id) == col(WorkItem.queue_id))
        .join(Encounter, col(Encounter.id) == col(WorkItem.encounter_id))
        .outerjoin(User, col(User.id) == col(WorkItem.coded_by_id))
        .where(WorkItem.status == Status.ready_for_billing)
    )
    if cursor is not None:
        stmt = stmt.where(col(WorkItem.id) > cursor)
    rows = session.exec(stmt.order_by(col(WorkItem.id)).limit(limit + 1)).all()
    found = [ReadyRow(item=i, queue=q, encounter=e, coded_by=u) for i, q, e, u in rows]
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        next_cursor = found[-1].item.id
    return found, next_cursor


def _split_name(name: str) -> tuple[str, str]:
    if "," in name:
        last, _, first = name.partition(",")
        return last.strip(), first.strip()
    parts = name.split()
    if len(parts) < 2:
        return name.strip(), ""
    return parts[-1], " ".join(parts[:-1])


def _physician(session: Session, *, encounter_id: int, npi: str | None) -> x12.Physician | None:
    """The abstract's physician with their name: as the encounter's source named them,
    else as another encounter's did (NPIs and names are public), else the settings' if the
    NPI is the configured attending's; the name left empty if none knows it."""
    if npi is None:
        return None
    names = session.exec(
        select(EncounterProvider.name)
        .where(EncounterProvider.npi == npi, EncounterProvider.name != "")
        .order_by(col(EncounterProvider.encounter_id) != encounter_id, col(EncounterProvider.id))
        .limit(1)
    ).all()
    settings = get_settings()
    if names:
        name = re.sub(r"^(dr\.?|doctor)\s+", "", names[0].strip(), flags=re.IGNORECASE)
        last, first = _split_name(name)
    elif npi == settings.billing_attending_npi:
        last, _, first = settings.billing_attending_name.partition(",")
    else:
        last, first = "", ""
    return x12.Physician(npi=npi, last=last.strip(), first=first.strip())


def claim_data(session: Session, *, actor: Principal, work_item_id: int) -> x12.ClaimData:
    """Everything a claim needs, from the record (audited view) and the code lines."""
    return checked_claim(session, actor=actor, work_item_id=work_item_id)[0]


def checked_claim(
    session: Session, *, actor: Principal, work_item_id: int
) -> tuple[x12.ClaimData, coding_service.Validation]:
    """The claim and its checks now (code sets and claim edits as loaded today, the levels
    set for its payer class), from one audited view of the record."""
    item = session.get(WorkItem, work_item_id)
    if item is None or item.status not in (Status.ready_for_billing, Status.billed):
        audit_service.record_denied(
            session,
            actor=actor,
            action=audit_service.Action.claim_export,
            work_item_id=work_item_id,
            purpose=PURPOSE,
            detail="not ready for billing",
        )
        raise NotFound("No such item ready for billing.")
    opened = records_service.open_record(
        session=session, actor=actor, work_item_id=work_item_id, purpose=PURPOSE, view="billing"
    )
    record = opened.record
    codes = coding_service.get_codes(session, key=opened.key)
    checks = coding_service.validate(
        session,
        codes=codes,
        context=coding_service.claim_context(session, item=item, record=record, key=opened.key),
    )
    abstract = abstract_service.get_abstract(session, key=opened.key)
    patient: Any = record.patient
    address = getattr(patient, "address", None)
    last, first = _split_name(patient.name or "")
    payer = record.payer
    claim = x12.ClaimData(
        work_item_id=work_item_id,
        inpatient=record.encounter.encounter_class.lower() == "inpatient",
        patient_last=last,
        patient_first=first,
        birth_date=patient.birth_date,
        sex=patient.sex,
        address_line=address.line if address else None,
        city=address.city if address else None,
        state=address.state if address else None,
        postal_code=address.postal_code if address else None,
        payer_name=payer.name if payer else None,
        member_id=payer.member_id if payer else None,
        start=record.encounter.start,
        end=record.encounter.end,
        diagnoses=[(d.code, d.poa) for d in codes.diagnoses],
        lines=[
            x12.Line(
                system=p.system,
                code=p.code,
                modifiers=p.modifiers,
                units=p.units,
                dx_pointers=p.dx_pointers,
                charge_cents=round(p.charge * 100),
            )
            for p in codes.procedures
        ],
        admission_type=abstract.admission_type,
        admission_source=abstract.admission_source,
        discharge_status=abstract.discharge_status,
        admitting_diagnosis=abstract.admitting_diagnosis,
        drg=checks.drg.drg if checks.drg else None,  # of the codes billed (after any QA)
        drg_version=checks.drg.version if checks.drg and checks.drg.drg else None,
        admission_hour=abstract.admission_hour,
        attending=_physician(session, encounter_id=item.encounter_id, npi=abstract.attending_npi),
        operating=_physician(session, encounter_id=item.encounter_id, npi=abstract.operating_npi),
        procedure_dates=dict(abstract.procedure_dates),
        birth_weight_grams=abstract.birth_weight_grams,
    )
    return claim, checks


def _check_npis(settings: Settings, *, inpatient: bool) -> None:
    """Refuse to build a claim a clearinghouse would reject for a mistyped NPI setting."""
    wanted = [("CHARTDESK_BILLING_PROVIDER_NPI", settings.billing_provider_npi)]
    if inpatient:
        wanted.append(("CHARTDESK_BILLING_ATTENDING_NPI", settings.billing_attending_npi))
    for name, npi in wanted:
        if not x12.npi_ok(npi):
            raise ServiceUnavailable(
                f"{name} is not a valid NPI (10 digits with a correct check digit); "
                "ask an administrator to fix the setting."
            )


def render_claim(claim: x12.ClaimData, fmt: str, *, control: int | None = None) -> str:
    """The claim in one format: x12 (837P or 837I), fhir (R4 Claim) or csv.

    `control` numbers the X12 interchange and group (ISA13/GS06); exports pass the id of
    their audit event, so every interchange sent gets its own number.
    """
    settings = get_settings()
    _check_npis(settings, inpatient=claim.inpatient)
    if fmt == "x12":
        number = control if control is not None else claim.work_item_id
        return x12.build_837(claim, settings, control=number % 1_000_000_000 or 1)
    if fmt == "fhir":
        return x12.dumps_fhir(x12.build_fhir(claim, settings))
    return x12.build_csv(claim, settings)


def export(session: Session, *, actor: Principal, work_item_id: int, fmt: str) -> str:
    """The claim of an item ready for billing (or billed), audited as claim-export."""
    if fmt not in FORMATS:
        raise ValidationFailed(
            "Unknown claim format.", details=[{"loc": ["format"], "msg": "x12, fhir or csv"}]
        )
    claim, checks = checked_claim(session, actor=actor, work_item_id=work_item_id)
    if checks.errors:  # a payer would deny it: no claim leaves with unresolved errors
        audit_service.record_denied(
            session,
            actor=actor,
            action=audit_service.Action.claim_export,
            outcome=audit_service.Outcome.failed,
            work_item_id=work_item_id,
            purpose=PURPOSE,
            detail=f"claim edits: errors={len(checks.errors)}",
        )
        raise ValidationFailed(
            f"The claim has {len(checks.errors)} unresolved error(s) a payer would deny it "
            "for; return it to the coder with the reason.",
            code="claim_edits",
            details=checks.details(),
        )
    event = audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.claim_export,
        work_item_id=work_item_id,
        purpose=PURPOSE,
        detail=f"format={fmt} type={'837I' if claim.inpatient else '837P'}",
    )
    try:
        return render_claim(claim, fmt, control=event.id)
    except ServiceUnavailable:
        audit_service.record_denied(
            session,
            actor=actor,
            action=audit_service.Action.claim_export,
            outcome=audit_service.Outcome.failed,
            work_item_id=work_item_id,
            purpose=PURPOSE,
            detail="billing provider settings invalid",
        )
        raise


def _billable_item(
    session: Session, *, actor: Principal, work_item_id: int, action: Any
) -> WorkItem:
    item = queue_service.lock_item(session, work_item_id)
    if item is None:
        audit_service.record_denied(
            session, actor=actor, action=action, work_item_id=work_item_id, purpose=PURPOSE
        )
        raise NotFound("No such work item.")
    if item.status != Status.ready_for_billing:
        raise Conflict(f"The item is {item.status}, not ready for billing.")
    return item


def mark_billed(
    session: Session, *, actor: Principal, work_item_id: int, claim_number: str
) -> WorkItem:
    """Record that the claim went out under `claim_number`; the item is billed."""
    number = claim_number.strip()
    if not number:
        raise ValidationFailed(
            "Give the claim number.", details=[{"loc": ["claim_number"], "msg": "required"}]
        )
    item = _billable_item(
        session, actor=actor, work_item_id=work_item_id, action=audit_service.Action.billed
    )
    session.add(ClaimRecord(work_item_id=work_item_id, claim_number=number, billed_by=actor.name))
    queue_service.transition(
        session, item=item, to_status=Status.billed, actor=actor, action="billed"
    )
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.billed,
        work_item_id=work_item_id,
        purpose=PURPOSE,
    )
    return item


def return_to_coder(
    session: Session, *, actor: Principal, work_item_id: int, reason: str
) -> WorkItem:
    """Send the item back to the coder who coded it (status returned, first in their list)."""
    text = reason.strip()
    if not text:
        raise ValidationFailed(
            "Say why the item goes back.", details=[{"loc": ["reason"], "msg": "required"}]
        )
    item = _billable_item(
        session, actor=actor, work_item_id=work_item_id, action=audit_service.Action.returned
    )
    back = ClaimReturn(
        work_item_id=work_item_id,
        coder_id=item.coded_by_id,
        sealed_reason=b"",
        returned_by=actor.name,
    )
    session.add(back)
    session.flush()
    assert back.id is not None  # noqa: S101
    back.sealed_reason = _seal_reason(session, back=back, reason=text[:500])
    queue_service.transition(
        session,
        item=item,
        to_status=Status.returned,
        actor=actor,
        action="returned",
        owner_id=item.coded_by_id,
    )
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.returned,
        work_item_id=work_item_id,
        purpose=PURPOSE,
    )
    return item


@dataclass
class ReturnNote:
    """Why billing returned an item, and when (shown to the coder)."""

    at: datetime
    reason: str


def _seal_reason(session: Session, *, back: ClaimReturn, reason: str) -> bytes:
    """The biller's reason sealed under the item's data key (it may name the patient)."""
    assert back.id is not None  # noqa: S101
    return records_service.seal_for_item(
        session,
        work_item_id=back.work_item_id,
        table=ClaimReturn.__tablename__,
        row_id=back.id,
        field="reason",
        value=reason,
    )


def last_return(session: Session, *, key: ItemKey) -> ReturnNote | None:
    """The latest return of an item, its reason opened with the key of an audited view."""
    back = session.exec(
        select(ClaimReturn)
        .where(ClaimReturn.work_item_id == key.work_item_id)
        .order_by(col(ClaimReturn.id).desc())
        .limit(1)
    ).first()
    if back is None or back.id is None:
        return None
    reason = key.open(
        table=ClaimReturn.__tablename__,
        row_id=back.id,
        field="reason",
        sealed=back.sealed_reason,
    )
    return ReturnNote(at=back.at, reason=str(reason))


def claim_number(session: Session, *, work_item_id: int) -> tuple[str, datetime] | None:
    """The claim number and time an item was billed under, if it was."""
    row = session.exec(
        select(ClaimRecord)
        .where(ClaimRecord.work_item_id == work_item_id)
        .order_by(col(ClaimRecord.id).desc())
    ).first()
    return (row.claim_number, row.billed_at) if row else None
