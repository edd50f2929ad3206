"""The audit vocabulary and the two ways to append an event.

`record` writes inside the caller's transaction, so the event commits with the access it
describes. `record_denied` writes in its own short transaction, so that a refused or failed
attempt is kept even though the request itself rolls back. Events carry ids only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from server.auth.principal import Principal
from server.db import after_end
from server.models import AuditEvent
from server.models.base import utcnow

_TABLE = AuditEvent.__table__  # type: ignore[attr-defined]
_INSERT = insert(_TABLE).returning(_TABLE.c.id)  # built once: it runs on every audited request


class Action(StrEnum):
    """Everything the audit log can say happened."""

    sign_in = "sign-in"
    sign_in_failed = "sign-in-failed"
    sign_out = "sign-out"
    lockout = "lockout"  # too many failed sign-ins: the account is locked for a while
    session_timeout = "session-timeout"
    view_record = "view-record"
    claim = "claim"
    release = "release"
    hold = "hold"
    resume = "resume"
    assign = "assign"
    move = "move"
    code_save = "code-save"
    # The as-you-type check of an inpatient stay opened its abstract and the patient's age
    # and sex for the grouper (nothing saved).
    code_check = "code-check"
    submit = "submit"
    qa_decision = "qa-decision"
    claim_export = "claim-export"
    billed = "billed"
    returned = "returned"
    remittance = "remittance"  # an 835 posted (or refused), and each claim it answered
    ingest = "ingest"
    key_rotate = "key-rotate"
    purge = "purge"
    user_admin = "user-admin"
    token_admin = "token-admin"  # noqa: S105 - an action name
    queue_admin = "queue-admin"
    audit_search = "audit-search"
    audit_export = "audit-export"
    audit_verify = "audit-verify"
    emergency_access = "emergency-access"
    query_create = "query-create"  # a coder asked a provider a physician query
    query_view = "query-view"  # a query's sealed fields opened (the provider, its coder)
    query_answer = "query-answer"  # the provider answered (signed)
    query_escalate = "query-escalate"  # unanswered after N business days: to a supervisor
    qa_finding_view = "qa-finding-view"  # a QA finding's sealed codes and comments opened
    qa_response = "qa-response"  # a coder agreed with or rebutted a QA finding
    qa_retrospective = "qa-retrospective"  # a billed chart sent back to QA review
    flag_review = "flag-review"  # a compliance officer's decision on a flag (issue 20)
    identity_lookup = "identity-lookup"  # a patient's name and MRN shown to compliance
    settings_admin = "settings-admin"  # a report setting changed (productivity standard)
    access = "access"  # a request refused before any specific action was known


class Outcome(StrEnum):
    """How it ended."""

    success = "success"
    denied = "denied"
    failed = "failed"


def _values(
    *,
    actor: Principal,
    action: Action,
    outcome: Outcome,
    patient_id: int | None,
    mrn_index: str | None,
    work_item_id: int | None,
    purpose: str | None,
    detail: str | None,
) -> dict[str, Any]:
    """An event's column values (every column but `id`)."""
    return {
        "time": utcnow(),
        "action": action.value,
        "outcome": outcome.value,
        "actor": actor.name,
        "actor_kind": actor.kind,
        "actor_roles": " ".join(sorted(actor.roles | actor.scopes)),
        "patient_id": patient_id,
        "mrn_index": mrn_index,
        "work_item_id": work_item_id,
        "source_ip": actor.source_ip,
        "user_agent": (actor.user_agent or "")[:300] or None,
        "request_id": actor.request_id,
        "purpose": purpose,
        "detail": detail,
    }


def record(
    session: Session,
    *,
    actor: Principal,
    action: Action,
    outcome: Outcome = Outcome.success,
    patient_id: int | None = None,
    mrn_index: str | None = None,
    work_item_id: int | None = None,
    purpose: str | None = "TREAT",
    detail: str | None = None,
) -> int:
    """Append an event in the caller's transaction (it commits with the access); its id.

    A Core INSERT of plain values: this runs on every audited request, and both the ORM's
    unit of work and building an AuditEvent model (pydantic defaults, instance state) only
    to read its values back cost more than the statement. Pending ORM changes still go first.
    """
    values = _values(
        actor=actor,
        action=action,
        outcome=outcome,
        patient_id=patient_id,
        mrn_index=mrn_index,
        work_item_id=work_item_id,
        purpose=purpose,
        detail=detail,
    )
    session.flush()
    return int(session.execute(_INSERT, values).scalar_one())


def record_denied(
    session: Session,
    *,
    actor: Principal,
    action: Action,
    outcome: Outcome = Outcome.denied,
    patient_id: int | None = None,
    mrn_index: str | None = None,
    work_item_id: int | None = None,
    purpose: str | None = None,
    detail: str | None = None,
) -> None:
    """Append a refused or failed attempt in its own transaction (survives the rollback).

    The event is written once the request's transaction has ended, whichever way it ended.
    """
    event = AuditEvent(
        **_values(
            actor=actor,
            action=action,
            outcome=outcome,
            patient_id=patient_id,
            mrn_index=mrn_index,
            work_item_id=work_item_id,
            purpose=purpose,
            detail=detail,
        )
    )
    after_end(session, lambda own: own.add(event))
