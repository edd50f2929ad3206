"""Data keys after ingest: re-wrapping under a new key-encryption key, and crypto-shredding.

Neither opens a sealed field: rotation unwraps each data key with the KEK that wrapped it and
wraps it again under the primary; purging destroys the wrapped key, so the encounter's
sealed content can never be opened again. Both flush; the caller commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, func, select

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.keyring import Keyring, load_keyring
from server.models import DataKey, Encounter, Status, WorkItem, WorkItemEvent
from server.models.base import utcnow
from server.records import crypto


def pending_rewrap(session: Session, *, keyring: Keyring | None = None) -> int:
    """How many live data keys are not yet wrapped by the primary key."""
    primary = (keyring or load_keyring()).primary_wrapping_id
    count = session.exec(
        select(func.count())
        .select_from(DataKey)
        .where(DataKey.kek_id != primary, col(DataKey.wrapped).is_not(None))
    ).one()
    return int(count)


def rewrap_batch(session: Session, *, limit: int = 500, keyring: Keyring | None = None) -> int:
    """Re-wrap up to `limit` data keys under the primary key; returns how many were done.

    Data is not re-encrypted: each key is unwrapped with the KEK that wrapped it (still in the
    keyring) and wrapped again under the primary. Run batches until it returns 0; stopping
    half way is safe, since what is left is simply what is not yet under the primary.
    """
    ring = keyring or load_keyring()
    primary = ring.primary_wrapping_id
    keys = session.exec(
        select(DataKey)
        .where(DataKey.kek_id != primary, col(DataKey.wrapped).is_not(None))
        .order_by(col(DataKey.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for dk in keys:
        assert dk.id is not None  # noqa: S101
        plain = crypto.unwrap(ring, data_key_id=dk.id, kek_id=dk.kek_id, wrapped=dk.wrapped)
        dk.kek_id, dk.wrapped = crypto.wrap(ring, plain, data_key_id=dk.id)
        session.add(dk)
    session.flush()
    return len(keys)


def _billed_at(session: Session, item: WorkItem) -> datetime:
    at = session.exec(
        select(func.max(WorkItemEvent.at)).where(
            WorkItemEvent.work_item_id == item.id, WorkItemEvent.to_status == Status.billed
        )
    ).one()
    return at if isinstance(at, datetime) else item.updated_at


def purge_billed_before(session: Session, *, actor: Principal, before: datetime) -> list[int]:
    """Crypto-shred billed encounters billed before `before`: destroy their data keys.

    Metadata, work items and the audit log stay; the sealed content can never be opened
    again (`open_record` answers RecordPurged). Returns the purged work item ids; each purge
    is audited (ids only).
    """
    rows = session.exec(
        select(WorkItem, Encounter, DataKey)
        .join(Encounter, col(Encounter.id) == col(WorkItem.encounter_id))
        .join(DataKey, col(DataKey.id) == col(Encounter.data_key_id))
        .where(WorkItem.status == Status.billed, col(DataKey.wrapped).is_not(None))
        .order_by(col(WorkItem.id))
    ).all()
    purged = []
    now = utcnow()
    for item, encounter, dk in rows:
        if _billed_at(session, item) >= before:
            continue
        dk.wrapped = None
        dk.destroyed_at = now
        session.add(dk)
        assert item.id is not None  # noqa: S101
        audit_service.record(
            session,
            actor=actor,
            action=audit_service.Action.purge,
            patient_id=encounter.patient_id,
            work_item_id=item.id,
            purpose=None,
            detail=f"encounter={encounter.id} data_key={dk.id}",
        )
        purged.append(item.id)
    session.flush()
    return purged
