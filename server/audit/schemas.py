"""Request and response models of the audit domain (API.md, Compliance)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from server.audit.search import EventRow
from server.models.audit import AuditEvent


class AuditEventView(BaseModel):
    """One event as compliance and the SIEM see it: ids only, never patient data."""

    id: int
    time: datetime
    action: str
    outcome: str
    actor: str | None
    actor_roles: list[str]
    work_item: int | None
    patient: int | None
    source_ip: str | None
    request_id: str | None
    purpose: str | None

    @classmethod
    def of(cls, event: AuditEvent | EventRow) -> AuditEventView:
        """The view of a stored event (a model, or a row of the one-trip search)."""
        assert event.id is not None  # noqa: S101
        return cls(
            id=event.id,
            time=event.time,
            action=event.action,
            outcome=event.outcome,
            actor=event.actor,
            actor_roles=event.actor_roles.split() if event.actor_roles else [],
            work_item=event.work_item_id,
            patient=event.patient_id,
            source_ip=event.source_ip,
            request_id=event.request_id,
            purpose=event.purpose,
        )


class AuditEventList(BaseModel):
    """A page of events, newest first; pass `next_cursor` back as `cursor=`."""

    items: list[AuditEventView]
    next_cursor: str | None


class VerifyView(BaseModel):
    """The chain check: `first_bad` names the first broken event ({seq, event_id, reason})."""

    ok: bool
    events_checked: int
    first_bad: dict[str, Any] | None
    checkpoints_checked: int
    unsealed: int
