"""Exports of the audit log: FHIR R4 AuditEvent (NDJSON) and CSV (formula-safe), audited."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlmodel import Session, col

from server.audit import service as audit_service
from server.audit.search import PURPOSE, EventFilter, check_filter, filtered_events
from server.audit.service import Action, Outcome
from server.auth.principal import Principal
from server.csvsafe import SafeWriter
from server.db import session_scope
from server.errors import ValidationFailed
from server.models import AuditEvent

CSV_COLUMNS = [
    "id",
    "time",
    "action",
    "outcome",
    "actor",
    "actor_kind",
    "actor_roles",
    "patient",
    "work_item",
    "source_ip",
    "user_agent",
    "request_id",
    "purpose",
    "detail",
]
EXPORT_FORMATS = ("fhir", "csv")

_DCM = "http://dicom.nema.org/resources/ontology/DCM"
BALP_PATIENT_READ = (
    "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
)
_TYPES: dict[str, tuple[str, str]] = {
    Action.view_record: ("110110", "Patient Record"),
    Action.sign_in: ("110114", "User Authentication"),
    Action.sign_in_failed: ("110114", "User Authentication"),
    Action.sign_out: ("110114", "User Authentication"),
    Action.session_timeout: ("110114", "User Authentication"),
    Action.lockout: ("110114", "User Authentication"),
    Action.claim_export: ("110106", "Export"),
    Action.audit_export: ("110106", "Export"),
    Action.audit_search: ("110112", "Query"),
    Action.ingest: ("110107", "Import"),
    Action.key_rotate: ("110113", "Security Alert"),
    Action.user_admin: ("110113", "Security Alert"),
    Action.token_admin: ("110113", "Security Alert"),
    Action.emergency_access: ("110110", "Patient Record"),
    Action.query_view: ("110110", "Patient Record"),
    Action.query_create: ("110110", "Patient Record"),
    Action.query_answer: ("110110", "Patient Record"),
    Action.qa_finding_view: ("110110", "Patient Record"),
    Action.qa_response: ("110110", "Patient Record"),
}
_CRUD: dict[str, str] = {
    Action.view_record: "R",
    Action.emergency_access: "R",
    Action.audit_search: "E",
    Action.audit_export: "R",
    Action.claim_export: "R",
    Action.ingest: "C",
    Action.code_save: "U",
    Action.submit: "U",
    Action.purge: "D",
    Action.query_view: "R",
    Action.query_create: "C",
    Action.query_answer: "U",
    Action.qa_finding_view: "R",
    Action.qa_response: "U",
}
_OUTCOME: dict[str, str] = {Outcome.success: "0", Outcome.denied: "4", Outcome.failed: "8"}


def fhir_audit_event(event: AuditEvent) -> dict[str, Any]:
    """A FHIR R4 AuditEvent in the IHE BALP style: agent, patient entity, outcome, purpose."""
    action = event.action
    code, display = _TYPES.get(action, ("110100", "Application Activity"))
    agent_type = {"user": "humanuser", "token": "application", "system": "application"}
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                    "code": agent_type.get(event.actor_kind, "humanuser"),
                }
            ]
        },
        "who": {
            "identifier": {"system": f"urn:chartdesk:{event.actor_kind}", "value": event.actor}
        },
        "requestor": True,
    }
    if event.actor_roles:  # FHIR has no empty arrays
        agent["role"] = [{"text": role} for role in event.actor_roles.split()]
    if event.source_ip:
        agent["network"] = {"address": event.source_ip, "type": "2"}
    if event.purpose:
        agent["purposeOfUse"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": event.purpose,
                    }
                ]
            }
        ]
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event.id),
        "type": {"system": _DCM, "code": code, "display": display},
        "subtype": [{"system": "urn:chartdesk:audit-action", "code": action}],
        "action": _CRUD.get(action, "E"),
        "recorded": event.time.isoformat(),
        "outcome": _OUTCOME.get(event.outcome, "8"),
        "agent": [agent],
        "source": {
            "observer": {"display": "Chartdesk"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": [],
    }
    if action in (Action.view_record, Action.emergency_access):
        resource["meta"] = {"profile": [BALP_PATIENT_READ]}
    if event.outcome != Outcome.success and event.detail:
        resource["outcomeDesc"] = event.detail
    if event.purpose:
        resource["purposeOfEvent"] = agent["purposeOfUse"]
    if event.patient_id is not None:
        resource["entity"].append(
            {
                "what": {"reference": f"Patient/{event.patient_id}"},
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "1",
                    "display": "Person",
                },
                "role": {
                    "system": "http://terminology.hl7.org/CodeSystem/object-role",
                    "code": "1",
                    "display": "Patient",
                },
            }
        )
    if event.work_item_id is not None:
        resource["entity"].append(
            {
                "what": {
                    "identifier": {
                        "system": "urn:chartdesk:work-item",
                        "value": str(event.work_item_id),
                    }
                },
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "2",
                    "display": "System Object",
                },
            }
        )
    if event.request_id:
        resource["entity"].append(
            {
                "what": {
                    "identifier": {"system": "urn:chartdesk:request-id", "value": event.request_id}
                }
            }
        )
    if not resource["entity"]:
        del resource["entity"]
    return resource


def csv_row(event: AuditEvent) -> list[Any]:
    """One CSV line of an event, in CSV_COLUMNS order."""
    return [
        event.id,
        event.time.isoformat(),
        event.action,
        event.outcome,
        event.actor or "",
        event.actor_kind,
        event.actor_roles,
        "" if event.patient_id is None else event.patient_id,
        "" if event.work_item_id is None else event.work_item_id,
        event.source_ip or "",
        event.user_agent or "",
        event.request_id or "",
        event.purpose or "",
        event.detail or "",
    ]


def check_export(fmt: str, since: datetime | None, until: datetime | None) -> EventFilter:
    """Validate an export request (422 listing each problem)."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationFailed(
            "Invalid export.", details=[{"loc": "format", "msg": "format is fhir or csv"}]
        )
    return check_filter(EventFilter(since=since, until=until))


def record_export(session: Session, *, actor: Principal, fmt: str, flt: EventFilter) -> None:
    """Write the audit-export event (in the caller's transaction, before data leaves).

    An export filtered by a patient's MRN names the patient as a search does: by the blind
    index and the patient id, never the MRN.
    """
    index: str | None = None
    ids: list[int] = []
    if flt.patient_mrn:
        _, index, ids = filtered_events(session, flt)
    audit_service.record(
        session,
        actor=actor,
        action=Action.audit_export,
        purpose=PURPOSE,
        mrn_index=index,
        patient_id=ids[0] if len(ids) == 1 else None,
        detail=f"format={fmt} {flt.describe()}"[:500],
    )


def export_lines(fmt: str, flt: EventFilter, *, chunk: int = 2000) -> Iterator[str]:
    """The export, streamed in id order from its own read session (NDJSON or CSV text).

    Every filter of the search applies (user, patient, work item, action, outcome, times).
    """
    if fmt == "csv":
        buf = io.StringIO()
        SafeWriter(buf).writerow(CSV_COLUMNS)
        yield buf.getvalue()
    last = 0
    while True:
        with session_scope() as session:
            stmt, _, _ = filtered_events(session, flt)
            if stmt is None:  # an MRN that matches no patient: nothing to export
                return
            stmt = stmt.where(col(AuditEvent.id) > last)
            rows = list(session.exec(stmt.order_by(col(AuditEvent.id)).limit(chunk)).all())
        if not rows:
            return
        buf = io.StringIO()
        if fmt == "csv":
            writer = SafeWriter(buf)
            for event in rows:
                writer.writerow(csv_row(event))
        else:
            for event in rows:
                buf.write(json.dumps(fhir_audit_event(event), separators=(",", ":")) + "\n")
        yield buf.getvalue()
        last = rows[-1].id or last
        if len(rows) < chunk:
            return
