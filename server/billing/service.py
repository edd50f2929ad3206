"""The billing queue: coded items ready to bill, claim exports, billed and returned.

Claims are built from the record opened through `records.open_record(view="billing")`
(audited there as a view) and the code lines; each export is audited as `claim-export`
with the format only. Marking billed stores the payer's claim number; returning sends the
item back to the coder who coded it, first in their list; the biller's reason is sealed
under the encounter's data key (it may name the patient).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, update
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.billing import cdm, kind, remittance, x12
from server.coding import abstract as abstract_service
from server.coding import codesets
from server.coding import service as coding_service
from server.config import Settings, get_settings
from server.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from server.models import (
    ClaimRecord,
    ClaimReturn,
    ControlCounter,
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
    # The payer's claim number this claim replaces (frequency 7, REF*F8): after a denial or
    # a retrospective QA correction; None for an original claim.
    replaces: str | None = None


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
    found = [
        ReadyRow(
            item=i,
            queue=q,
            encounter=e,
            coded_by=u,
            replaces=remittance.replacement_of(session, work_item_id=i.id or 0),
        )
        for i, q, e, u in rows
    ]
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
    settings = get_settings()
    inpatient = record.encounter.encounter_class.lower() == "inpatient"
    outpatient_837i = kind.outpatient_institutional(
        settings, record.encounter.encounter_class, record.encounter.facility
    )
    titles = codesets.titles(session, codes=codes)
    claim = x12.ClaimData(
        work_item_id=work_item_id,
        inpatient=inpatient,
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
        payer_id=payer_id(
            settings, payer.name if payer else None, payer.payer_id if payer else None
        ),
        place_of_service=place_of_service(
            settings,
            record.encounter.encounter_class,
            record.encounter.facility,
            record.encounter.modality,
        ),
        start=record.encounter.start,
        end=record.encounter.end,
        diagnoses=[(d.code, d.poa) for d in codes.diagnoses],
        lines=priced_lines(
            session,
            codes=codes,
            titles=titles,
            inpatient=inpatient,
            start=record.encounter.start,
            end=record.encounter.end,
        ),
        outpatient_institutional=outpatient_837i,
        admission_type=abstract.admission_type,
        admission_source=abstract.admission_source,
        discharge_status=abstract.discharge_status,
        admitting_diagnosis=abstract.admitting_diagnosis,
        drg=checks.drg.drg if checks.drg else None,  # of the codes billed (after any QA)
        drg_version=checks.drg.version if checks.drg and checks.drg.drg else None,
        admission_hour=abstract.admission_hour,
        admission_date=abstract.admission_date,
        attending=_physician(session, encounter_id=item.encounter_id, npi=abstract.attending_npi),
        operating=_physician(session, encounter_id=item.encounter_id, npi=abstract.operating_npi),
        procedure_dates=dict(abstract.procedure_dates),
        birth_weight_grams=abstract.birth_weight_grams,
    )
    # What keeps the claim from being built truthfully is a claim edit the biller sees.
    for problem in x12.problems(claim):
        checks.error(list(problem.loc), problem.msg, problem.code)
    if claim.total_cents > 0:
        for n, line in enumerate(claim.lines, start=1):
            if line.charge_cents == 0:
                checks.warn(
                    ["claim", "lines", n, "charge"],
                    f"Line {n} ({line.code}) has no price: not in the chargemaster, no charge "
                    "entered.",
                    "claim-line-price",
                )
    original = remittance.replacement_of(session, work_item_id=work_item_id)
    if original:  # corrected after a denial or after billing: replaces the payer's claim
        claim.frequency_code, claim.original_claim_number = "7", original
    return claim, checks


def place_of_service(
    settings: Settings,
    encounter_class: str,
    facility: str | None = None,
    modality: str | None = None,
) -> str:
    """The CMS place of service of a claim from the encounter class and the facility's
    setting: inpatient 21, emergency 23, outpatient 22 at a hospital or 11 at an office; a
    telehealth visit 02, or 10 with the patient at home."""
    if modality == "telehealth-home":
        return "10"
    if modality == "telehealth":
        return "02"
    klass = encounter_class.lower()
    if klass == "inpatient":
        return "21"
    if klass == "emergency":
        return "23"
    return "22" if kind.facility_setting(settings, facility) == "hospital" else "11"


def payer_id(settings: Settings, name: str | None, from_coverage: str | None) -> str | None:
    """The payer id: the Coverage's, else the configured one for the payer's name, else the
    catch-all setting (None: a claim edit)."""
    if from_coverage:
        return from_coverage
    wanted = (name or "").strip().casefold()
    for known, value in settings.billing_payer_ids.items():
        if wanted and known.strip().casefold() == wanted:
            return value
    return settings.billing_payer_id or None


def priced_lines(
    session: Session,
    *,
    codes: Any,
    titles: dict[str, str],
    inpatient: bool,
    start: datetime | None,
    end: datetime | None,
) -> list[x12.Line]:
    """The claim lines with revenue code, description and charge from the chargemaster in
    force on the date of service: the charge code the coder picked for the line, else the
    line's HCPCS/CPT code (or PCS revenue rule); a charge the coder entered on a line wins.
    Plus room and board per day for an inpatient stay."""
    on = (start or end or datetime.now(UTC)).astimezone(UTC).date()
    procedures = list(codes.procedures)
    by_code = cdm.by_hcpcs(
        session, codes=[p.code for p in procedures if p.system in ("CPT", "HCPCS")], on=on
    )
    picked = cdm.by_charge_code(session, codes=[p.charge_code or "" for p in procedures], on=on)
    pcs_revenue = {p.code: cdm.pcs_revenue_code(p.code) for p in procedures if p.system == "PCS"}
    wanted = {r for r in pcs_revenue.values() if r}
    if inpatient:
        wanted.add(cdm.ROOM_AND_BOARD)
    by_revenue = cdm.by_revenue(session, revenue_codes=wanted, on=on)
    lines: list[x12.Line] = []
    for p in procedures:
        title = titles.get(f"{p.system}:{p.code}", "")
        chosen = picked.get((p.charge_code or "").strip())
        found: cdm.Charge | None
        if chosen is not None:  # the chargemaster line the coder picked for this line
            found = chosen
            revenue = chosen.revenue_code
            description = chosen.description or title
        elif p.system == "PCS":
            revenue = pcs_revenue.get(p.code) or ""
            found = by_revenue.get(revenue)
            description = title or (found.description if found else "")
        else:
            found = by_code.get(p.code.upper())
            revenue = found.revenue_code if found else ""
            description = (found.description if found else "") or title
        entered = round(p.charge * 100)
        charge = entered if entered > 0 else (found.price_cents * p.units if found else 0)
        lines.append(
            x12.Line(
                system=p.system,
                code=p.code,
                modifiers=p.modifiers,
                units=p.units,
                dx_pointers=p.dx_pointers,
                charge_cents=charge,
                revenue_code=revenue,
                description=description,
            )
        )
    room = by_revenue.get(cdm.ROOM_AND_BOARD)
    if inpatient and room is not None:
        first = (start or end or datetime.now(UTC)).astimezone(UTC).date()
        last = (end or start or datetime.now(UTC)).astimezone(UTC).date()
        days = max(1, (last - first).days)
        lines.append(
            x12.Line(
                system="REV",
                code=cdm.ROOM_AND_BOARD,
                modifiers=[],
                units=days,
                dx_pointers=[],
                charge_cents=room.price_cents * days,
                revenue_code=cdm.ROOM_AND_BOARD,
                description=room.description,
            )
        )
    return lines


def _check_npis(settings: Settings, *, institutional: bool) -> None:
    """Refuse to build a claim a clearinghouse would reject for a mistyped NPI setting."""
    wanted = [("CHARTDESK_BILLING_PROVIDER_NPI", settings.billing_provider_npi)]
    if institutional:
        wanted.append(("CHARTDESK_BILLING_ATTENDING_NPI", settings.billing_attending_npi))
    for name, npi in wanted:
        if not x12.npi_ok(npi):
            raise ServiceUnavailable(
                f"{name} is not a valid NPI (10 digits with a correct check digit); "
                "ask an administrator to fix the setting."
            )


def next_controls(session: Session, *, groups: int = 1, transactions: int = 1) -> x12.Controls:
    """The next X12 control numbers (ISA13, first GS06, first ST02) from persisted counters:
    unique and increasing across every export, in every process."""
    numbers: dict[str, int] = {}
    for name, count in (("isa", 1), ("gs", groups), ("st", transactions)):
        stmt = (
            update(ControlCounter)
            .where(col(ControlCounter.name) == name)
            .values(value=col(ControlCounter.value) + count)
            .returning(col(ControlCounter.value))
        )
        value = session.execute(stmt).scalar_one_or_none()
        if value is None:  # a database made before the counters: start them
            session.add(ControlCounter(name=name, value=count))
            session.flush()
            value = count
        numbers[name] = value - count + 1
    return x12.Controls(numbers["isa"], numbers["gs"], numbers["st"])


def render_claim(claim: x12.ClaimData, fmt: str, *, controls: x12.Controls | None = None) -> str:
    """The claim in one format: x12 (837P or 837I), fhir (R4 Claim) or csv.

    `controls` numbers the X12 interchange, group and transaction set (ISA13/GS06/ST02);
    exports take them from the persisted counters (`next_controls`), a preview uses the item id.
    """
    settings = get_settings()
    _check_npis(settings, institutional=claim.institutional)
    if fmt == "x12":
        number = claim.work_item_id % 1_000_000_000 or 1
        return x12.build_interchange(
            [claim], settings, controls=controls or x12.Controls(number, number, 1)
        )
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
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.claim_export,
        work_item_id=work_item_id,
        purpose=PURPOSE,
        detail=f"format={fmt} type={claim.claim_type}",
    )
    try:
        controls = next_controls(session) if fmt == "x12" else None
        return render_claim(claim, fmt, controls=controls)
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
            "Give the claim number.",
            details=[{"loc": ["claim_number"], "msg": "Give the claim number."}],
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
    """Send the item back to the coder who coded it (status returned, first in their list);
    with no coder on record, to a queue by the denials rules (`remittance.return_queue`)."""
    text = reason.strip()
    if not text:
        raise ValidationFailed(
            "Say why the item goes back.",
            details=[{"loc": ["reason"], "msg": "Say why the item goes back."}],
        )
    item = _billable_item(
        session, actor=actor, work_item_id=work_item_id, action=audit_service.Action.returned
    )
    # The same routing as a payer's denial: to its coder, or with none on record to a queue.
    _, target = remittance.send_back(session, actor=actor, item=item, reason=text[:500])
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.returned,
        work_item_id=work_item_id,
        purpose=PURPOSE,
        detail=f"queue={target.id}" if target is not None else None,
    )
    return item


@dataclass
class ReturnNote:
    """Why billing returned an item, and when (shown to the coder)."""

    at: datetime
    reason: str
    denial: remittance.ClaimView | None = None  # the payer's coded reasons, if a denial


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
    back = session.exec(_LAST_RETURN, params={"item_id": key.work_item_id}).first()
    return open_return(session, key=key, back=back)


# The latest return of an item: the one with the highest id (built once).
LATEST_RETURN_ID = (
    select(func.max(ClaimReturn.id))
    .where(col(ClaimReturn.work_item_id) == bindparam("item_id"))
    .correlate(None)  # never the enclosing query's claim_return (the chart joins one)
    .scalar_subquery()
)
_LAST_RETURN = select(ClaimReturn).where(col(ClaimReturn.id) == LATEST_RETURN_ID)


def open_return(session: Session, *, key: ItemKey, back: ClaimReturn | None) -> ReturnNote | None:
    """An item's latest return (the row `LATEST_RETURN_ID` names, None: never returned), its
    reason opened with the key of an audited view; for a caller that read the row itself."""
    if back is None or back.id is None:
        return None
    reason = key.open(
        table=ClaimReturn.__tablename__,
        row_id=back.id,
        field="reason",
        sealed=back.sealed_reason,
    )
    return ReturnNote(
        at=back.at,
        reason=str(reason),
        denial=remittance.denial_of(session, claim_return_id=back.id),
    )


def claim_number(session: Session, *, work_item_id: int) -> tuple[str, datetime] | None:
    """The claim number and time an item is billed under now: None while it is not billed
    (never billed, or ready to bill again as a replacement after a denial or a QA
    correction, when the biller must be able to send and mark it again)."""
    item = session.get(WorkItem, work_item_id)
    if item is None or item.status != Status.billed:
        return None
    row = session.exec(
        select(ClaimRecord)
        .where(ClaimRecord.work_item_id == work_item_id)
        .order_by(col(ClaimRecord.id).desc())
    ).first()
    return (row.claim_number, row.billed_at) if row else None


# ---------------------------------------------------------------- batch export


MAX_BATCH = 500


@dataclass
class Batch:
    """One interchange sent: its text, control number, and the claims in it."""

    text: str
    interchange: int
    claims: list[tuple[int, str]]  # (work item id, claim number = CLM01)
    skipped: list[int] = field(default_factory=list)  # a day's items held back by claim edits


def _day_items(session: Session, day: date) -> list[int]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = session.exec(
        select(WorkItem.id)
        .where(
            WorkItem.status == Status.ready_for_billing,
            col(WorkItem.coded_at) >= start,
            col(WorkItem.coded_at) < start + timedelta(days=1),
        )
        .order_by(col(WorkItem.id))
        .limit(MAX_BATCH + 1)
    ).all()
    return [int(i) for i in rows if i is not None]


def batch_export(
    session: Session,
    *,
    actor: Principal,
    work_item_ids: list[int] | None = None,
    day: date | None = None,
) -> Batch:
    """Every selected claim ready to bill (or every one coded on `day`) as one X12
    interchange; each goes out under its patient control number and is marked billed.

    A selected claim with claim edits refuses the whole batch (422, nothing changes); a
    day's claims with edits are left out and listed. Control numbers come from the counters.
    """
    if (work_item_ids is None) == (day is None):
        raise ValidationFailed(
            "Select the claims, or give the day they were coded.",
            details=[{"loc": ["items"], "msg": "items or date, one of them"}],
        )
    ids = list(dict.fromkeys(work_item_ids)) if work_item_ids is not None else []
    if day is not None:
        ids = _day_items(session, day)
    if not ids:
        # The detail repeats the message, so a page shows one sentence (not "... no claims").
        msg = (
            "No claim ready to bill is selected."
            if day is None
            else f"No claim coded on {day} is ready to bill."
        )
        raise ValidationFailed(
            msg, details=[{"loc": ["items" if day is None else "date"], "msg": msg}]
        )
    if len(ids) > MAX_BATCH:
        raise ValidationFailed(
            f"At most {MAX_BATCH} claims per interchange.",
            details=[{"loc": ["items"], "msg": f"at most {MAX_BATCH}"}],
        )
    items: list[WorkItem] = []
    for item_id in sorted(ids):  # locked in id order: two batches never deadlock
        items.append(
            _billable_item(
                session, actor=actor, work_item_id=item_id, action=audit_service.Action.claim_export
            )
        )
    claims: list[x12.ClaimData] = []
    refused: list[dict[str, Any]] = []
    skipped: list[int] = []
    for item in items:
        assert item.id is not None  # noqa: S101
        claim, checks = checked_claim(session, actor=actor, work_item_id=item.id)
        if checks.errors:
            if day is not None:
                skipped.append(item.id)
                continue
            refused += [
                {"loc": ["items", item.id, *p.loc], "code": p.code, "msg": f"#{item.id}: {p.msg}"}
                for p in checks.errors
            ]
            continue
        claims.append(claim)
    if refused:
        raise ValidationFailed(
            "Some selected claims have unresolved claim edits; nothing was exported. "
            "Leave them out or return them to the coder.",
            code="claim_edits",
            details=refused,
        )
    if not claims:
        raise ValidationFailed(
            f"Every claim coded on {day} has claim edits; nothing was exported.",
            code="claim_edits",
            details=[{"loc": ["items", i], "msg": "claim edits"} for i in skipped],
        )
    settings = get_settings()
    for claim in claims:
        _check_npis(settings, institutional=claim.institutional)
    kinds = len({c.institutional for c in claims})
    controls = next_controls(session, groups=kinds, transactions=len(claims))
    text = x12.build_interchange(claims, settings, controls=controls)
    by_id = {i.id: i for i in items}
    for claim in claims:
        item = by_id[claim.work_item_id]
        session.add(
            ClaimRecord(
                work_item_id=claim.work_item_id,
                claim_number=claim.claim_id,
                interchange=controls.interchange,
                billed_by=actor.name,
            )
        )
        queue_service.transition(
            session, item=item, to_status=Status.billed, actor=actor, action="billed"
        )
        audit_service.record(
            session,
            actor=actor,
            action=audit_service.Action.claim_export,
            work_item_id=claim.work_item_id,
            purpose=PURPOSE,
            detail=f"format=x12 batch interchange={controls.interchange} type={claim.claim_type}",
        )
        audit_service.record(
            session,
            actor=actor,
            action=audit_service.Action.billed,
            work_item_id=claim.work_item_id,
            purpose=PURPOSE,
        )
    return Batch(
        text=text,
        interchange=controls.interchange,
        claims=[(c.work_item_id, c.claim_id) for c in claims],
        skipped=skipped,
    )


@dataclass
class BilledRow:
    """A billed claim as the history lists it (no patient data)."""

    record: ClaimRecord
    encounter: Encounter
    status: str = Status.billed  # the item now: a denied claim is back with the coder

    @property
    def opens(self) -> bool:
        """Whether the claim page opens (it shows items ready to bill or billed)."""
        return self.status in (Status.ready_for_billing, Status.billed)


def billed_history(
    session: Session, *, q: str | None = None, cursor: int | None = None, limit: int = 50
) -> tuple[list[BilledRow], int | None]:
    """Billed claims, newest first; `q` finds a claim number (or part of one), an item id or
    an interchange control number. Keyset pagination by claim record id."""
    stmt = (
        select(ClaimRecord, Encounter, col(WorkItem.status))
        .join(WorkItem, col(WorkItem.id) == col(ClaimRecord.work_item_id))
        .join(Encounter, col(Encounter.id) == col(WorkItem.encounter_id))
    )
    text = (q or "").strip()
    if text:
        wanted = [func.lower(col(ClaimRecord.claim_number)).contains(text.lower(), autoescape=True)]
        digits = text.lstrip("#")
        if digits.isdigit() and len(digits) < 10:
            wanted += [
                col(ClaimRecord.work_item_id) == int(digits),
                col(ClaimRecord.interchange) == int(digits),
            ]
        stmt = stmt.where(or_(*wanted))
    if cursor is not None:
        stmt = stmt.where(col(ClaimRecord.id) < cursor)
    rows = session.exec(stmt.order_by(col(ClaimRecord.id).desc()).limit(limit + 1)).all()
    found = [BilledRow(record=r, encounter=e, status=st) for r, e, st in rows]
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        next_cursor = found[-1].record.id
    return found, next_cursor


@dataclass
class ClaimPage:
    """What the biller's claim page shows: the claim, its edit status, the X12 beside it."""

    claim: x12.ClaimData
    checks: coding_service.Validation
    preview: str | None  # None: claim edits keep it from being built
    diagnosis_titles: list[str]
    billed: tuple[str, datetime] | None


def claim_page(session: Session, *, actor: Principal, work_item_id: int) -> ClaimPage:
    """The claim of an item for the biller (one audited view of the record)."""
    claim, checks = checked_claim(session, actor=actor, work_item_id=work_item_id)
    try:
        preview: str | None = render_claim(claim, "x12")
    except x12.ClaimNotBuildable:
        preview = None
    index = codesets.icd10cm()
    titles = []
    for code, _poa in claim.diagnoses:
        found = index.get(codesets.normalise(code))
        titles.append(found.description if found else "")
    return ClaimPage(
        claim=claim,
        checks=checks,
        preview=preview,
        diagnosis_titles=titles,
        billed=claim_number(session, work_item_id=work_item_id),
    )
