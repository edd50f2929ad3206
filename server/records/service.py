"""Encounters: create (from either ingest path), routing, and `open_record`, the one door to
plaintext.

Patient data, payer member id, coding hints and notes are sealed with the encounter's own
data key before they reach the session (see `records/crypto.py`); routing fields and dates of
service stay in clear. `open_record` checks the caller's right to see the item, writes the
`view-record` audit event in the caller's transaction, and only then decrypts. Services flush
and never commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from pydantic import ValidationError
from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from server.audit import service as audit_service
from server.audit.search import PURPOSE_TITLES
from server.auth.deps import InStatementCaller
from server.auth.principal import Principal
from server.billing.x12 import npi_ok
from server.coding import nubc
from server.config import get_settings
from server.db import AsyncPool, session_scope
from server.errors import AppError, Conflict, NotFound, ValidationFailed
from server.keyring import AwsKmsProvider, load_keyring, mrn_index
from server.models import (
    DataKey,
    Document,
    Encounter,
    EncounterProvider,
    Hl7Message,
    ItemAbstract,
    Patient,
    Queue,
    Role,
    Scope,
    Status,
    WorkItem,
    WorkItemEvent,
)
from server.models.base import utcnow
from server.queue import service as queue_service
from server.records import crypto, fhir, hl7
from server.records.routing import route
from server.records.schemas import (
    AddressView,
    AdmissionIn,
    BillingPatientView,
    DocumentIn,
    DocumentView,
    EncounterIn,
    EncounterView,
    HintsView,
    IngestedItem,
    PatientView,
    PayerView,
    RecordView,
    safe_errors,
)

VIEWS = ("coding", "billing", "returned")

# The deepest nesting an ingested JSON document may have. Synthea bundles reach about 12;
# `[` x 100,000 overflowed the parser's stack (a 500), and a few hundred levels would reach
# code that walks the tree recursively.
MAX_JSON_DEPTH = 64
_TOO_DEEP = f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels; nothing was stored."


def parse_json(raw: bytes | str) -> Any:
    """An ingested document parsed: 400 `invalid_json` if it is not JSON, 422 `json_too_deep`
    if it nests deeper than MAX_JSON_DEPTH (the API and `chartdesk import` alike)."""
    try:
        value = json.loads(raw)
    except RecursionError:
        value = None
        deep = True
    except (ValueError, UnicodeDecodeError):
        raise AppError("The body is not valid JSON.", code="invalid_json") from None
    else:
        deep = _deeper_than(value, MAX_JSON_DEPTH)
    if deep:
        raise ValidationFailed(
            _TOO_DEEP,
            code="json_too_deep",
            details=[{"loc": ["body"], "msg": f"nested deeper than {MAX_JSON_DEPTH} levels"}],
        )
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


BILLING_STATUSES = (Status.ready_for_billing, Status.billed)


# ---------------------------------------------------------------- create


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _due_at(data: EncounterIn) -> datetime:
    anchor = data.end or data.start or utcnow()
    return anchor + timedelta(days=get_settings().due_days_after_discharge)


def _existing(session: Session, *, source_system: str, external_id: str) -> IngestedItem | None:
    row = session.exec(
        select(WorkItem.id, Queue.name)
        .join(Encounter, col(Encounter.id) == col(WorkItem.encounter_id))
        .join(Queue, col(Queue.id) == col(WorkItem.queue_id))
        .where(Encounter.source_system == source_system, Encounter.external_id == external_id)
    ).first()
    if row is None:
        return None
    return IngestedItem(id=str(row[0]), external_id=external_id, queue=row[1], status="duplicate")


def _patient(session: Session, *, source_system: str, index: str) -> Patient:
    """The patient with this blind-indexed MRN, created if new (safe against a racing insert)."""
    stmt = select(Patient).where(Patient.source_system == source_system, Patient.mrn_index == index)
    found = session.exec(stmt).first()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            patient = Patient(source_system=source_system, mrn_index=index)
            session.add(patient)
    except IntegrityError:
        patient = session.exec(stmt).one()
    return patient


def create_encounter(
    session: Session,
    *,
    actor: Principal,
    data: EncounterIn,
    visit: dict[str, Any] | None = None,
    detail: str | None = None,
) -> IngestedItem:
    """Seal and store one encounter and its `ready` work item; `duplicate` if already here.

    The one creation path behind FHIR ingest, JSON ingest, `chartdesk import`, the demo and
    the test factories. Audited as `ingest` with ids only. (source system, external id) is
    unique: a concurrent sender of the same encounter gets `duplicate`, never a second item.
    `visit` (HL7: attending, discharge disposition) is sealed with the patient data; the
    coding view does not show it. `detail` is added to the audit event (ids only).
    """
    existing = _existing(session, source_system=data.source_system, external_id=data.external_id)
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            return _insert(session, actor=actor, data=data, visit=visit, detail=detail)
    except IntegrityError:
        existing = _existing(
            session, source_system=data.source_system, external_id=data.external_id
        )
        if existing is None:
            raise
        return existing


def _insert(
    session: Session,
    *,
    actor: Principal,
    data: EncounterIn,
    visit: dict[str, Any] | None,
    detail: str | None,
) -> IngestedItem:
    keyring = load_keyring()
    index = mrn_index(data.patient.mrn, keyring=keyring)
    patient = _patient(session, source_system=data.source_system, index=index)
    assert patient.id is not None  # noqa: S101

    data_key = crypto.new_data_key()
    dk = DataKey(kek_id="pending", wrapped=None)
    session.add(dk)
    session.flush()
    assert dk.id is not None  # noqa: S101
    dk.kek_id, dk.wrapped = crypto.wrap(keyring, data_key, data_key_id=dk.id)

    where = route(
        session,
        facility=data.facility,
        encounter_class=data.encounter_class.value,
        service_type=data.service_type,
        payer_class=data.payer_class,
    )
    encounter = Encounter(
        source_system=data.source_system,
        external_id=data.external_id,
        patient_id=patient.id,
        data_key_id=dk.id,
        encounter_class=where.set_class or data.encounter_class.value,
        facility=data.facility,
        service_type=data.service_type,
        payer_class=data.payer_class,
        start_at=data.start,
        end_at=data.end,
        modality=data.modality.value if data.modality else None,
        sealed_patient=b"",
    )
    session.add(encounter)
    session.flush()
    assert encounter.id is not None  # noqa: S101
    encounter.sealed_patient = _seal_patient(
        data_key, data_key_id=dk.id, encounter_id=encounter.id, data=data, visit=visit
    )
    encounter.sealed_hints = crypto.seal(
        data_key,
        _dumps(data.hints.model_dump(mode="json")),
        aad=crypto.field_aad("encounter", encounter.id, "hints", data_key_id=dk.id),
    )
    _add_notes(
        session,
        data_key,
        data_key_id=dk.id,
        encounter_id=encounter.id,
        notes=data.documents,
        first_position=0,
    )
    seen_npis: set[str] = set()
    for provider in data.providers:
        if provider.npi not in seen_npis:  # one row per practitioner, the first role kept
            seen_npis.add(provider.npi)
            session.add(
                EncounterProvider(
                    encounter_id=encounter.id,
                    npi=provider.npi,
                    name=provider.name,
                    role=provider.role,
                )
            )
    item = WorkItem(
        encounter_id=encounter.id,
        queue_id=where.queue_id,
        status=Status.ready,
        priority=where.priority,
        due_at=_due_at(data),
    )
    session.add(item)
    session.flush()
    assert item.id is not None  # noqa: S101
    if data.admission is not None:  # the source's admission prefills the abstract (sealed)
        session.add(
            ItemAbstract(
                work_item_id=item.id,
                sealed_abstract=crypto.seal(
                    data_key,
                    _dumps(_prefill(data.admission, data)),
                    aad=crypto.field_aad("item_abstract", item.id, "abstract", data_key_id=dk.id),
                ),
            )
        )
    session.add(
        WorkItemEvent(
            work_item_id=item.id, actor_id=actor.user_id, action="ingest", to_status=Status.ready
        )
    )
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.ingest,
        patient_id=patient.id,
        mrn_index=index,
        work_item_id=item.id,
        purpose=None,
        detail=f"encounter={encounter.id}" + (f"; {detail}" if detail else ""),
    )
    session.flush()
    return IngestedItem(
        id=str(item.id), external_id=data.external_id, queue=where.queue, status="created"
    )


def _seal_patient(
    data_key: bytes,
    *,
    data_key_id: int,
    encounter_id: int,
    data: EncounterIn,
    visit: dict[str, Any] | None,
) -> bytes:
    """The encounter's sealed patient field: demographics, payer, and the visit if given."""
    sealed: dict[str, Any] = {
        "patient": data.patient.model_dump(mode="json"),
        "payer": data.payer.model_dump(mode="json") if data.payer else None,
    }
    if visit:
        sealed["visit"] = visit
    return crypto.seal(
        data_key,
        _dumps(sealed),
        aad=crypto.field_aad("encounter", encounter_id, "patient", data_key_id=data_key_id),
    )


def _add_notes(
    session: Session,
    data_key: bytes,
    *,
    data_key_id: int,
    encounter_id: int,
    notes: list[DocumentIn],
    first_position: int,
) -> None:
    """Seal and store notes of an encounter, numbered from `first_position`."""
    for position, note in enumerate(notes, start=first_position):
        doc = Document(encounter_id=encounter_id, position=position, doc_date=note.date, sealed=b"")
        session.add(doc)
        session.flush()
        assert doc.id is not None  # noqa: S101
        doc.sealed = crypto.seal(
            data_key,
            _dumps({"title": note.title, "type": note.type, "text": note.text}),
            aad=crypto.field_aad("document", doc.id, "content", data_key_id=data_key_id),
        )


def ingest_encounters(
    session: Session, *, actor: Principal, encounters: list[EncounterIn]
) -> list[IngestedItem]:
    """Create every encounter of one request (one transaction: the caller's)."""
    return [create_encounter(session, actor=actor, data=data) for data in encounters]


# ---------------------------------------------------------------- the door to plaintext


def _may_see(actor: Principal, item: WorkItem, view: str) -> bool:
    """Whether `actor` has a right to see this item's record in this view right now."""
    if view not in VIEWS:
        return False
    if actor.kind == "token":
        return Scope.billing in actor.scopes and item.status in BILLING_STATUSES
    if actor.kind != "user" or actor.user_id is None:
        return False
    if actor.has_role(Role.biller) and item.status in BILLING_STATUSES:
        return True
    if view == "returned":  # the coder's own returned item, read before taking it back
        return (
            actor.has_role(Role.coder)
            and item.status == Status.returned
            and (
                item.lease_owner_id == actor.user_id
                or (item.lease_owner_id is None and item.coded_by_id == actor.user_id)
            )
        )
    if view != "coding":
        return False
    if (
        actor.has_role(Role.coder)
        and item.status == Status.in_progress
        and item.lease_owner_id == actor.user_id
        and item.lease_expires_at is not None
        and item.lease_expires_at > utcnow()
    ):
        return True
    return actor.has_role(Role.supervisor) and item.status == Status.qa_review


def _refuse(
    session: Session,
    *,
    actor: Principal,
    work_item_id: int,
    purpose: str,
    detail: str,
    outcome: audit_service.Outcome = audit_service.Outcome.denied,
    patient_id: int | None = None,
    action: audit_service.Action = audit_service.Action.view_record,
) -> None:
    audit_service.record_denied(
        session,
        actor=actor,
        action=action,
        outcome=outcome,
        work_item_id=work_item_id,
        patient_id=patient_id,
        purpose=purpose,
        detail=detail,
    )


def _decrypt(
    *, key: bytes, data_key_id: int, encounter: Encounter, docs: list[Document]
) -> tuple[dict[str, Any], dict[str, Any], list[tuple[Document, dict[str, Any]]]]:
    assert encounter.id is not None  # noqa: S101
    sealed = json.loads(
        crypto.open_sealed(
            key,
            encounter.sealed_patient,
            aad=crypto.field_aad("encounter", encounter.id, "patient", data_key_id=data_key_id),
        )
    )
    hints: dict[str, Any] = {}
    if encounter.sealed_hints is not None:
        hints = json.loads(
            crypto.open_sealed(
                key,
                encounter.sealed_hints,
                aad=crypto.field_aad("encounter", encounter.id, "hints", data_key_id=data_key_id),
            )
        )
    opened = []
    for doc in docs:
        assert doc.id is not None  # noqa: S101
        content = json.loads(
            crypto.open_sealed(
                key,
                doc.sealed,
                aad=crypto.field_aad("document", doc.id, "content", data_key_id=data_key_id),
            )
        )
        opened.append((doc, content))
    return sealed, hints, opened


def _address(raw: dict[str, Any] | None) -> AddressView | None:
    if not raw:
        return None
    lines = [line for line in raw.get("line") or [] if line]
    return AddressView(
        line=", ".join(lines) or None,
        city=raw.get("city"),
        state=raw.get("state"),
        postal_code=raw.get("postal_code"),
    )


def _prefill(admission: AdmissionIn, data: EncounterIn) -> dict[str, Any]:
    """The abstract's fields the source sent, each kept only when it is valid: a code on its
    NUBC list, an NPI with its check digit, a PCS code's procedure date within the stay."""
    source = (admission.admission_source or "").upper()
    status = admission.discharge_status or ""
    admitted = data.start.date() if data.start else None
    discharged = data.end.date() if data.end else None
    dates = {
        code.upper(): when.isoformat()
        for code, when in admission.procedure_dates.items()
        if (admitted is None or when >= admitted) and (discharged is None or when <= discharged)
    }
    return {
        "admission_source": source if source in nubc.ADMISSION_SOURCE else None,
        "discharge_status": status if status in nubc.DISCHARGE_STATUS else None,
        "admission_hour": admission.admission_hour,
        # The date on the clock of the hour (the start as the source wrote it, its offset).
        "admission_date": data.start.date().isoformat() if data.start else None,
        "attending_npi": _valid_npi(admission.attending_npi),
        "operating_npi": _valid_npi(admission.operating_npi),
        **({"procedure_dates": dates} if dates else {}),
    }


def _valid_npi(npi: str | None) -> str | None:
    return npi if npi is not None and npi_ok(npi) else None


_MINT = object()  # only this module holds it: an ItemKey cannot be made elsewhere


class ItemKey:
    """The opened data key of one work item's encounter: the one way to open its other fields.

    Other domains keep patient data of an item sealed under its encounter's data key (code
    lines, QA and return reasons, ...). Opening them takes an `ItemKey`, and only this
    module's audited doors hand one out: `open_record` (the view is audited first),
    `open_record_in_one_trip` (its statement audits the view with the read) and
    `open_for_use` (the use is audited first). So a function that opens sealed item data
    says so in its signature, and cannot be called without an audited access before it.
    """

    __slots__ = ("_data_key_id", "_key", "work_item_id")

    def __init__(self, *, mint: object, work_item_id: int, key: bytes, data_key_id: int) -> None:
        if mint is not _MINT:
            raise TypeError("an ItemKey comes only from an audited door of server.records.service")
        self.work_item_id = work_item_id
        self._key = key
        self._data_key_id = data_key_id

    def __repr__(self) -> str:
        return f"ItemKey(work_item_id={self.work_item_id})"

    def open(self, *, table: str, row_id: int, field: str, sealed: bytes) -> Any:
        """The JSON value sealed for this row and field of this item (SealBroken if moved)."""
        aad = crypto.field_aad(table, row_id, field, data_key_id=self._data_key_id)
        return json.loads(crypto.open_sealed(self._key, sealed, aad=aad))

    def seal(self, *, table: str, row_id: int, field: str, value: Any) -> bytes:
        """Seal a JSON value for this row and field under the item's data key."""
        aad = crypto.field_aad(table, row_id, field, data_key_id=self._data_key_id)
        return crypto.seal(self._key, _dumps(value), aad=aad)


@dataclass(frozen=True)
class OpenedRecord:
    """What an audited view hands out: the decrypted record and the key to the item's fields."""

    record: RecordView
    key: ItemKey
    # The encounter row (metadata only, its sealed fields still sealed), kept referenced so
    # that the session's identity map holds it while the chart is composed: the claim
    # context's `session.get(Encounter, ...)` then costs no second SELECT (the map holds
    # rows weakly, and nothing else kept this one alive past open_record).
    encounter: Encounter | None = field(default=None, repr=False, compare=False)


# Built once (SQLAlchemy reuses their cache keys): every chart view runs them.
# The encounter, its patient, its data key and its documents in one round trip (one row per
# document, at least one row: issue 23, two statements before). Still sealed: nothing is
# opened before the view is audited.
_ENCOUNTER_PATIENT_KEY_DOCUMENTS = (
    select(Encounter, Patient, DataKey, Document)
    .join(Patient, col(Patient.id) == col(Encounter.patient_id))
    .join(DataKey, col(DataKey.id) == col(Encounter.data_key_id))
    .outerjoin(Document, col(Document.encounter_id) == col(Encounter.id))
    .where(col(Encounter.id) == bindparam("encounter_id"))
    .order_by(col(Document.position), col(Document.id))
)


def open_record(
    *,
    session: Session,
    actor: Principal,
    work_item_id: int,
    purpose: str,
    view: str = "coding",
    emergency_reason: str | None = None,
) -> OpenedRecord:
    """The decrypted record of a work item, if `actor` may see it now; audited first.

    Coders: an item leased to them (view "coding"), or returned to them (view "returned":
    why it came back, before they resume it). Supervisors: items in QA review
    (coding). Billers and `billing` tokens: items ready for billing or billed (either view;
    "billing" adds the patient's address and the payer). Anyone else, or any other item:
    NotFound, audited as denied. A purged record answers RecordPurged (410).

    Break-glass: with `emergency_reason` (one of CHARTDESK_EMERGENCY_REASONS) a coder or
    supervisor may open any item's coding view; it is audited as `emergency-access` with
    purpose ETREAT, and compliance sees it among the flags.

    The data key is unwrapped once; the `ItemKey` returned beside the record opens the
    item's other sealed fields (codes, reasons) within this audited view.
    """
    action = audit_service.Action.view_record
    item = session.get(WorkItem, work_item_id)
    if emergency_reason is not None:
        if emergency_reason not in get_settings().emergency_reasons:
            _refuse(
                session,
                actor=actor,
                work_item_id=work_item_id,
                purpose="ETREAT",
                detail="emergency access without a listed reason",
                action=audit_service.Action.emergency_access,
            )
            raise ValidationFailed(
                "Choose one of the listed reasons for emergency access.",
                details=[{"loc": ["reason"], "msg": "not one of the listed reasons"}],
            )
        action, purpose, view = audit_service.Action.emergency_access, "ETREAT", "coding"
        if not (actor.has_role(Role.coder) or actor.has_role(Role.supervisor)):
            item = None
    if item is None or (
        action is audit_service.Action.view_record and not _may_see(actor, item, view)
    ):
        _refuse(
            session,
            actor=actor,
            work_item_id=work_item_id,
            purpose=purpose,
            detail="no right to see this record",
            action=action,
        )
        raise NotFound("No such work item.")
    rows = session.execute(
        _ENCOUNTER_PATIENT_KEY_DOCUMENTS, {"encounter_id": item.encounter_id}
    ).all()
    encounter, patient, dk, _ = rows[0]
    docs = [doc for *_, doc in rows if doc is not None]
    assert encounter.id is not None  # noqa: S101
    if dk.wrapped is None:
        _refuse(
            session,
            actor=actor,
            work_item_id=work_item_id,
            purpose=purpose,
            patient_id=patient.id,
            outcome=audit_service.Outcome.failed,
            detail="record purged",
            action=action,
        )
        raise crypto.RecordPurged("This record was purged: its encryption key was destroyed.")
    audit_service.record(
        session,
        actor=actor,
        action=action,
        patient_id=patient.id,
        mrn_index=patient.mrn_index,
        work_item_id=work_item_id,
        purpose=purpose,
        detail=f"view={view}"
        + (f"; reason={emergency_reason}" if emergency_reason is not None else ""),
    )
    try:
        return _opened(
            work_item_id=work_item_id,
            encounter=encounter,
            key_row=(dk.id, dk.kek_id, dk.wrapped),
            docs=docs,
            view=view,
        )
    except AppError as exc:
        _refuse(
            session,
            actor=actor,
            work_item_id=work_item_id,
            purpose=purpose,
            patient_id=patient.id,
            outcome=audit_service.Outcome.failed,
            detail=exc.code,
            action=action,
        )
        raise


def _opened(
    *,
    work_item_id: int,
    encounter: Encounter,
    key_row: tuple[int | None, str, bytes | None],
    docs: list[Document],
    view: str,
) -> OpenedRecord:
    """The open half of an audited view: unwrap the key, decrypt, compose the record.

    Only for rows whose view was audited already (`open_record`, and the one-trip read whose
    statement wrote the event). An AppError (a key that does not unwrap, a seal that does not
    open) is for the caller to audit as failed. `key_row`: the data key's id, KEK id and
    wrapped key.
    """
    data_key_id, kek_id, wrapped = key_row
    assert encounter.id is not None  # noqa: S101
    assert data_key_id is not None  # noqa: S101
    key = crypto.unwrap(load_keyring(), data_key_id=data_key_id, kek_id=kek_id, wrapped=wrapped)
    sealed, hints, opened = _decrypt(
        key=key, data_key_id=data_key_id, encounter=encounter, docs=docs
    )
    raw = sealed["patient"]
    fields = {
        "mrn": raw["mrn"],
        "name": raw["name"],
        "birth_date": raw.get("birth_date"),
        "sex": raw.get("sex"),
    }
    payer = None
    person: PatientView
    if view == "billing":
        person = BillingPatientView(**fields, address=_address(raw.get("address")))
        raw_payer = sealed.get("payer") or {}
        payer = PayerView(
            name=raw_payer.get("name"),
            member_id=raw_payer.get("member_id"),
            payer_id=raw_payer.get("payer_id"),
        )
    else:
        person = PatientView(**fields)
    record = RecordView(
        work_item_id=work_item_id,
        encounter_id=encounter.id,
        patient_id=encounter.patient_id,
        view=view,
        patient=person,
        encounter=EncounterView(
            source=encounter.source_system,
            external_id=encounter.external_id,
            encounter_class=encounter.encounter_class,
            facility=encounter.facility,
            service_type=encounter.service_type,
            start=encounter.start_at,
            end=encounter.end_at,
            payer_class=encounter.payer_class,
            modality=encounter.modality,
        ),
        documents=[
            DocumentView(
                id=doc.id or 0,
                title=content.get("title"),
                type=content.get("type"),
                date=doc.doc_date,
                text=content["text"],
            )
            for doc, content in opened
        ],
        hints=HintsView.model_validate(hints),
        payer=payer,
    )
    return OpenedRecord(
        record=record,
        key=ItemKey(mint=_MINT, work_item_id=work_item_id, key=key, data_key_id=data_key_id),
        encounter=encounter,
    )


@dataclass(frozen=True)
class ChartRead:
    """What the one-trip view read beside the record: the item (every column), its queue's
    name, its holder, its sealed code lines and abstract (None: none saved) and the
    encounter's practitioners as (NPI, name)."""

    item: WorkItem
    queue: str
    holder: str
    sealed_lines: bytes | None
    sealed_abstract: bytes | None
    providers: list[tuple[str, str]]
    # The holder as the view's audit event names them (for a `failed` event that follows it).
    actor: Principal = field(repr=False, compare=False)


async def audit_failed_view(read: ChartRead, *, patient_id: int, code: str) -> None:
    """A one-trip view's `failed` event, after its committed `view-record` one: a sealed
    part of the chart (code lines, abstract) did not open once the statement had returned."""
    assert read.item.id is not None  # noqa: S101
    await run_in_threadpool(_audit_failed_open, read.actor, read.item.id, patient_id, code)


# `chartdesk_view_session` (migration 0031) answers the item and encounter rows as composites;
# they are expanded here column by column from the models, so a column a later migration adds
# is read too (a test checks every one arrives).
_ITEM_FIELDS = tuple(c.name for c in WorkItem.__table__.columns)  # type: ignore[attr-defined]
_ENCOUNTER_FIELDS = tuple(c.name for c in Encounter.__table__.columns)  # type: ignore[attr-defined]
_VIEW_COLUMNS = ", ".join(
    [f"(r.item_row).{name}" for name in _ITEM_FIELDS]
    + [f"(r.encounter_row).{name}" for name in _ENCOUNTER_FIELDS]
    + [
        f"r.{name}"
        for name in (
            "queue_name holder holder_roles key_kek_id key_wrapped doc_ids doc_positions "
            "doc_dates doc_sealed codes_sealed abstract_sealed provider_npis provider_names"
        ).split()
    ]
)
_VIEW_SESSION_SQL = (
    f"SELECT r.outcome, {_VIEW_COLUMNS} FROM chartdesk_view_session("  # noqa: S608  # nosec B608 - model column names
    "%(sid)s, %(activity)s, %(idle)s, %(max_hours)s, %(roles)s, %(now)s, %(item)s, %(ip)s, "
    "%(ua)s, %(rid)s, %(purpose)s, %(detail)s) AS r"
)


def _utc(value: Any) -> Any:
    """A timestamp read by psycopg (in the connection's zone) in UTC, as UTCDateTime reads it."""
    return value.astimezone(UTC) if isinstance(value, datetime) else value


async def open_record_in_one_trip(
    pool: AsyncPool, *, caller: InStatementCaller, work_item_id: int
) -> tuple[OpenedRecord, ChartRead] | None:
    """`open_record` of the coder's leased item (view "coding", purpose TREAT) for a cookie
    session, as one statement: `chartdesk_view_session` checks the session, locks the item,
    checks the lease, writes the `view-record` event and reads the sealed chart in one
    transaction; the open half (`_opened`) then runs here, on the event loop.

    None: nothing was written (the session check said no, or the chart is not one the
    statement opens); the caller takes the ordinary path, which answers and audits as it
    always has. A key or seal that does not open is audited as failed, beside the view event
    that committed with the read, and raised as `open_record` raises it.
    """
    row = await pool.fetchone(
        _VIEW_SESSION_SQL,
        {
            **caller.params(),
            "item": work_item_id,
            "purpose": "TREAT",
            "detail": "view=coding",
        },
    )
    if row is None or row[0] != "opened":
        return None
    n, m = len(_ITEM_FIELDS), len(_ENCOUNTER_FIELDS)
    item = WorkItem(**{k: _utc(v) for k, v in zip(_ITEM_FIELDS, row[1 : 1 + n], strict=True)})
    encounter = Encounter(
        **{k: _utc(v) for k, v in zip(_ENCOUNTER_FIELDS, row[1 + n : 1 + n + m], strict=True)}
    )
    (queue, holder, holder_roles, kek_id, wrapped, ids, positions, dates, sealed, lines,
     abstract, npis, names) = row[1 + n + m :]  # fmt: skip
    encounter_id = int(encounter.id or 0)
    docs = [
        Document(id=doc_id, encounter_id=encounter_id, position=pos, doc_date=_utc(at), sealed=body)
        for doc_id, pos, at, body in zip(
            ids or [], positions or [], dates or [], sealed or [], strict=True
        )
    ]
    actor = Principal(
        name=holder,
        kind="user",
        roles=frozenset(holder_roles.split()),
        source_ip=caller.ip,
        user_agent=caller.user_agent,
        request_id=caller.request_id,
        user_id=item.lease_owner_id,
    )
    opening = partial(
        _opened,
        work_item_id=work_item_id,
        encounter=encounter,
        key_row=(encounter.data_key_id, kek_id, wrapped),
        docs=docs,
        view="coding",
    )
    try:
        if str(kek_id).startswith(AwsKmsProvider.PREFIX):
            # Unwrapping is a call to KMS (network, retries in an outage): never on the loop.
            opened = await run_in_threadpool(opening)
        else:
            opened = opening()
    except Exception as exc:  # a seal, the keyring or KMS (its outage raises its own errors)
        # The view event committed with the read: the failure follows it (the type's name
        # only for an unexpected error: a message could quote data).
        code = exc.code if isinstance(exc, AppError) else type(exc).__name__
        await run_in_threadpool(_audit_failed_open, actor, work_item_id, encounter.patient_id, code)
        raise
    read = ChartRead(
        item=item,
        queue=queue,
        holder=holder,
        sealed_lines=lines,
        sealed_abstract=abstract,
        providers=list(zip(npis or [], names or [], strict=True)),
        actor=actor,
    )
    return opened, read


def _audit_failed_open(actor: Principal, work_item_id: int, patient_id: int, code: str) -> None:
    """The `failed` event of a one-trip view whose key or seal did not open (its own
    transaction, as open_record's refusal is written)."""
    with session_scope() as session:
        _refuse(
            session,
            actor=actor,
            work_item_id=work_item_id,
            purpose="TREAT",
            patient_id=patient_id,
            outcome=audit_service.Outcome.failed,
            detail=code,
        )


# ---------------------------------------------------------------- other domains' sealed fields


_ITEM_KEY = (
    select(DataKey, Encounter.patient_id, Patient.mrn_index)
    .join(Encounter, col(Encounter.data_key_id) == col(DataKey.id))
    .join(Patient, col(Patient.id) == col(Encounter.patient_id))
    .join(WorkItem, col(WorkItem.encounter_id) == col(Encounter.id))
    .where(col(WorkItem.id) == bindparam("work_item_id"))
)


def _data_key(session: Session, *, work_item_id: int) -> tuple[DataKey, int, str]:
    """A work item's data key row, patient id and MRN index (NotFound if no such item)."""
    row = session.execute(_ITEM_KEY, {"work_item_id": work_item_id}).first()
    if row is None or row[0].id is None:
        raise NotFound("No such work item.")
    return row[0], row[1], row[2]


def _unwrap(dk: DataKey) -> bytes:
    assert dk.id is not None  # noqa: S101
    return crypto.unwrap(load_keyring(), data_key_id=dk.id, kek_id=dk.kek_id, wrapped=dk.wrapped)


def seal_for_item(
    session: Session, *, work_item_id: int, table: str, row_id: int, field: str, value: Any
) -> bytes:
    """Seal a JSON value of another domain's row under the item's encounter data key.

    For patient data other domains store (code lines, reasons typed by people): the
    ciphertext is bound to `table`, `row_id`, `field` and the data key like the record's own
    fields, and dies with them when the record is purged (RecordPurged from then on).
    Sealing reveals nothing, so it needs no audited view; opening needs an `ItemKey`.
    """
    dk, _, _ = _data_key(session, work_item_id=work_item_id)
    assert dk.id is not None  # noqa: S101
    aad = crypto.field_aad(table, row_id, field, data_key_id=dk.id)
    return crypto.seal(_unwrap(dk), _dumps(value), aad=aad)


def open_for_use(
    session: Session,
    *,
    actor: Principal,
    work_item_id: int,
    action: audit_service.Action,
    purpose: str | None,
    detail: str | None = None,
) -> ItemKey:
    """The key to an item's sealed fields for a use that shows no record (submit, a
    provider reading or answering their physician query: the query's own fields only).

    The caller has already checked its right to the item (a held lease, say). The use is
    audited here, in the caller's transaction, with the patient's ids, before the key is
    handed out: the audit row is the use's own record, so the caller writes no second one.
    """
    dk, patient_id, index = _data_key(session, work_item_id=work_item_id)
    assert dk.id is not None  # noqa: S101
    if dk.wrapped is None:
        raise crypto.RecordPurged("This record was purged: its encryption key was destroyed.")
    audit_service.record(
        session,
        actor=actor,
        action=action,
        patient_id=patient_id,
        mrn_index=index,
        work_item_id=work_item_id,
        purpose=purpose,
        detail=detail,
    )
    return ItemKey(mint=_MINT, work_item_id=work_item_id, key=_unwrap(dk), data_key_id=dk.id)


@dataclass(frozen=True)
class Demographics:
    """The patient's birth date and sex: what the claim edits' age and sex checks need."""

    birth_date: str | None
    sex: str | None


def demographics(session: Session, *, key: ItemKey) -> Demographics:
    """The patient's birth date and sex, opened with the key of an audited view or use.

    For checks run under an audited use that shows no record (saving codes, submit): only
    these two fields leave the sealed patient value, and only into the caller's memory.
    """
    row = session.execute(
        select(Encounter.id, Encounter.sealed_patient)
        .join(WorkItem, col(WorkItem.encounter_id) == col(Encounter.id))
        .where(col(WorkItem.id) == key.work_item_id)
    ).one()
    sealed = key.open(table="encounter", row_id=row[0], field="patient", sealed=row[1])
    patient = sealed.get("patient") or {}
    return Demographics(birth_date=patient.get("birth_date"), sex=patient.get("sex"))


# ---------------------------------------------------------------- identity on demand


@dataclass(frozen=True)
class PatientIdentity:
    """A patient's name and MRN as their latest encounter sent them (compliance only)."""

    patient_id: int
    name: str
    mrn: str


def patient_identity(
    session: Session, *, actor: Principal, patient_id: int, purpose: str = "HCOMPL"
) -> PatientIdentity:
    """The name and MRN behind an internal patient id, for a compliance officer reviewing
    the audit log; audited first (`identity-lookup`, with its purpose), refusals too.

    Opened from the patient's latest encounter whose key still exists. Anyone without the
    compliance role, or an id with no such patient, is refused with NotFound (audited); a
    purpose not among the audit log's purposes of use with 422 at `purpose` (audited).
    """
    action = audit_service.Action.identity_lookup
    if purpose not in PURPOSE_TITLES:
        audit_service.record_denied(
            session,
            actor=actor,
            action=action,
            outcome=audit_service.Outcome.failed,
            patient_id=patient_id,
            purpose=None,
            detail="unknown purpose",
        )
        raise ValidationFailed(
            f"'{purpose[:20]}' is not a purpose of use: pick one of {', '.join(PURPOSE_TITLES)}.",
            details=[{"loc": ["purpose"], "msg": f"one of {', '.join(PURPOSE_TITLES)}"}],
        )
    patient = session.get(Patient, patient_id) if actor.has_role(Role.compliance) else None
    row = None
    if patient is not None:
        row = session.execute(
            select(Encounter, DataKey)
            .join(DataKey, col(DataKey.id) == col(Encounter.data_key_id))
            .where(col(Encounter.patient_id) == patient_id, col(DataKey.wrapped).is_not(None))
            .order_by(col(Encounter.id).desc())
            .limit(1)
        ).first()
    if patient is None or row is None:
        audit_service.record_denied(
            session,
            actor=actor,
            action=action,
            outcome=audit_service.Outcome.denied
            if patient is None
            else audit_service.Outcome.failed,
            patient_id=patient_id,
            purpose=purpose,
            detail="no such patient or no right" if patient is None else "every record purged",
        )
        raise NotFound("No such patient, or their records were purged.")
    encounter, dk = row
    audit_service.record(
        session,
        actor=actor,
        action=action,
        patient_id=patient_id,
        mrn_index=patient.mrn_index,
        purpose=purpose,
        detail=f"identity from encounter={encounter.id}",
    )
    assert encounter.id is not None  # noqa: S101
    assert dk.id is not None  # noqa: S101
    sealed = json.loads(
        crypto.open_sealed(
            _unwrap(dk),
            encounter.sealed_patient,
            aad=crypto.field_aad("encounter", encounter.id, "patient", data_key_id=dk.id),
        )
    )
    raw = sealed.get("patient") or {}
    return PatientIdentity(
        patient_id=patient_id, name=str(raw.get("name") or ""), mrn=str(raw.get("mrn") or "")
    )


# ---------------------------------------------------------------- ingest


def validate_encounter(payload: Any) -> EncounterIn:
    """Our JSON form as `EncounterIn`, or ValidationFailed listing every problem."""
    try:
        return EncounterIn.model_validate(payload)
    except ValidationError as exc:
        details = safe_errors(exc)
        raise ValidationFailed(
            f"The encounter has {len(details)} problem(s); nothing was stored.", details=details
        ) from None


def ingest_fhir(session: Session, *, actor: Principal, bundle: Any) -> list[IngestedItem]:
    """Every Encounter of a FHIR bundle, all or nothing (ValidationFailed stores nothing)."""
    return ingest_encounters(session, actor=actor, encounters=fhir.parse_bundle(bundle))


def ingest_json(session: Session, *, actor: Principal, payload: Any) -> list[IngestedItem]:
    """One encounter in Chartdesk's JSON form."""
    return [create_encounter(session, actor=actor, data=validate_encounter(payload))]


# ---------------------------------------------------------------- changes after arrival (HL7)

# A chart is "not yet coded" while a coder may still work it: cancelling or un-discharging
# it then is safe. Once submitted (QA, billing) the source must go through a supervisor.
NOT_YET_CODED = (Status.ready, Status.in_progress, Status.on_hold, Status.cancelled)


def _visit(
    session: Session, *, source_system: str, external_id: str
) -> tuple[Encounter, WorkItem, DataKey, Queue]:
    """The encounter of this visit with its work item, data key and queue (NotFound if none)."""
    row = session.exec(
        select(Encounter, WorkItem, DataKey, Queue)
        .join(WorkItem, col(WorkItem.encounter_id) == col(Encounter.id))
        .join(DataKey, col(DataKey.id) == col(Encounter.data_key_id))
        .join(Queue, col(Queue.id) == col(WorkItem.queue_id))
        .where(Encounter.source_system == source_system, Encounter.external_id == external_id)
        .with_for_update(of=WorkItem)
    ).first()
    if row is None:
        raise NotFound("No encounter with this visit number is here yet; send its ADT first.")
    return row[0], row[1], row[2], row[3]


def _live_key(dk: DataKey) -> bytes:
    if dk.wrapped is None:
        raise crypto.RecordPurged("This record was purged: its encryption key was destroyed.")
    return _unwrap(dk)


def _not_coded(item: WorkItem, what: str) -> None:
    if item.coded_at is not None or item.status not in NOT_YET_CODED:
        raise Conflict(
            f"The chart is already coded (status {item.status}); {what} needs a supervisor."
        )


def _ingested(item: WorkItem, encounter: Encounter, queue: Queue, status: str) -> IngestedItem:
    return IngestedItem(
        id=str(item.id), external_id=encounter.external_id, queue=queue.name, status=status
    )


def _audit_change(
    session: Session, *, actor: Principal, encounter: Encounter, item: WorkItem, detail: str
) -> None:
    patient = session.get(Patient, encounter.patient_id)
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.ingest,
        patient_id=encounter.patient_id,
        mrn_index=patient.mrn_index if patient is not None else None,
        work_item_id=item.id,
        purpose=None,
        detail=f"encounter={encounter.id}; {detail}",
    )


def update_encounter(
    session: Session,
    *,
    actor: Principal,
    data: EncounterIn,
    visit: dict[str, Any] | None = None,
    undo_discharge: bool = False,
    detail: str = "update",
) -> IngestedItem:
    """Replace an encounter's data with a newer state of it (created if not here yet).

    Clear fields (class, facility, service type, payer class, dates of service) take the new
    values, the class through the routing rules' `set_class`; a start or end the update
    leaves empty keeps the stored one, unless `undo_discharge` clears the end. Patient,
    payer and visit are sealed again under the encounter's own data key. The queue, status
    and notes stay. Refused (Conflict: the caller answers AE) once the chart is coded, and
    when the message names another MRN than the visit's patient.
    """
    try:
        encounter, item, dk, queue = _visit(
            session, source_system=data.source_system, external_id=data.external_id
        )
    except NotFound:
        return create_encounter(session, actor=actor, data=data, visit=visit, detail=detail)
    # A coded (or billed) chart is not rewritten under the coder and the claim: its dates,
    # class and payer decide the codes and the claim. A supervisor reopens it first.
    _not_coded(item, "undoing its discharge" if undo_discharge else "changing it")
    patient = session.get(Patient, encounter.patient_id)
    if patient is not None and patient.mrn_index != mrn_index(data.patient.mrn):
        # The audit log finds a patient's accesses by the MRN's blind index: a changed MRN
        # is a patient merge or correction (A34/A40), never a silent rewrite of the chart.
        raise Conflict(
            "The message names another MRN than this visit's patient; correct or merge the "
            "patient in the EHR (A34/A40), not through an update."
        )
    key = _live_key(dk)
    assert encounter.id is not None  # noqa: S101
    assert dk.id is not None  # noqa: S101
    where = route(
        session,
        facility=data.facility,
        encounter_class=data.encounter_class.value,
        service_type=data.service_type,
        payer_class=data.payer_class,
    )
    encounter.encounter_class = where.set_class or data.encounter_class.value
    encounter.facility = data.facility
    encounter.service_type = data.service_type
    encounter.payer_class = data.payer_class
    encounter.start_at = data.start or encounter.start_at
    encounter.end_at = None if undo_discharge else (data.end or encounter.end_at)
    encounter.modality = data.modality.value if data.modality else encounter.modality
    encounter.sealed_patient = _seal_patient(
        key, data_key_id=dk.id, encounter_id=encounter.id, data=data, visit=visit
    )
    session.add(encounter)
    if item.status == Status.ready:
        anchor = encounter.end_at or encounter.start_at or utcnow()
        item.due_at = anchor + timedelta(days=get_settings().due_days_after_discharge)
        session.add(item)
    session.flush()
    _audit_change(session, actor=actor, encounter=encounter, item=item, detail=detail)
    return _ingested(item, encounter, queue, "updated")


def add_documents(
    session: Session,
    *,
    actor: Principal,
    source_system: str,
    external_id: str,
    documents: list[DocumentIn],
    detail: str = "documents",
) -> IngestedItem:
    """Seal and add notes to an encounter already here (NotFound if it is not, yet)."""
    encounter, item, dk, queue = _visit(
        session, source_system=source_system, external_id=external_id
    )
    key = _live_key(dk)
    assert encounter.id is not None  # noqa: S101
    assert dk.id is not None  # noqa: S101
    last = session.exec(
        select(Document.position)
        .where(Document.encounter_id == encounter.id)
        .order_by(col(Document.position).desc())
    ).first()
    _add_notes(
        session,
        key,
        data_key_id=dk.id,
        encounter_id=encounter.id,
        notes=documents,
        first_position=(last + 1) if last is not None else 0,
    )
    session.flush()
    _audit_change(
        session,
        actor=actor,
        encounter=encounter,
        item=item,
        detail=f"{detail}; documents+{len(documents)}",
    )
    return _ingested(item, encounter, queue, "updated")


def cancel_encounter(
    session: Session,
    *,
    actor: Principal,
    source_system: str,
    external_id: str,
    detail: str = "cancel",
) -> IngestedItem:
    """Mark the work item of a cancelled visit `cancelled` (Conflict once it is coded).

    A coder holding it loses the lease; a cancelled item is never offered by Next.
    """
    encounter, item, _, queue = _visit(
        session, source_system=source_system, external_id=external_id
    )
    _not_coded(item, "cancelling it")
    if item.status != Status.cancelled:
        queue_service.transition(
            session, item=item, to_status=Status.cancelled, actor=actor, action="cancel"
        )
    _audit_change(session, actor=actor, encounter=encounter, item=item, detail=detail)
    return _ingested(item, encounter, queue, "cancelled")


def _hl7_duplicate(session: Session, message: hl7.Hl7Parsed) -> IngestedItem:
    found = _existing(session, source_system=message.source_system, external_id=message.external_id)
    return found or IngestedItem(
        id="", external_id=message.external_id, queue="", status="duplicate"
    )


def ingest_hl7(session: Session, *, actor: Principal, message: hl7.Hl7Parsed) -> IngestedItem:
    """Apply one HL7 v2 message (from `hl7.parse`) once: a resend answers `duplicate`.

    (sending application, facility, MSH-10) is unique in `hl7_message`, written in this
    transaction, so
    a message applied by one listener is a duplicate to every other, and one refused
    (AppError: the caller answers AE) leaves nothing. ADT A01/A04 create the encounter
    (a known visit: `duplicate`), A08 and A03 update it (A03 with its discharge), A13 undoes
    the discharge, A11 cancels it; MDM T02/T04/T08 and ORU R01 add their notes to it.
    """
    h = message.header
    seen = select(Hl7Message.id).where(
        Hl7Message.sending_application == h.sending_application,
        Hl7Message.sending_facility == h.sender,
        Hl7Message.control_id == h.control_id,
    )
    if session.exec(seen).first() is not None:
        return _hl7_duplicate(session, message)
    row = Hl7Message(
        sending_application=h.sending_application,
        sending_facility=h.sender,
        control_id=h.control_id,
        message_type=h.kind,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return _hl7_duplicate(session, message)
    detail = f"hl7 {h.kind}; message={row.id}"
    source, number = message.source_system, message.external_id
    if message.documents:
        result = add_documents(
            session,
            actor=actor,
            source_system=source,
            external_id=number,
            documents=message.documents,
            detail=detail,
        )
    elif h.event in hl7.CANCEL:
        result = cancel_encounter(
            session, actor=actor, source_system=source, external_id=number, detail=detail
        )
    else:
        assert message.encounter is not None  # noqa: S101
        if h.event in hl7.ADMIT:
            result = create_encounter(
                session, actor=actor, data=message.encounter, visit=message.visit, detail=detail
            )
        else:
            result = update_encounter(
                session,
                actor=actor,
                data=message.encounter,
                visit=message.visit,
                undo_discharge=h.event in hl7.UNDO_DISCHARGE,
                detail=detail,
            )
    row.work_item_id = int(result.id) if result.id else None
    session.add(row)
    session.flush()
    return result
