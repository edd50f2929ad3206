"""The audit log: append-only events (ids only, never patient data) and signed checkpoints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, text
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow

# The events the compliance activity figure counts (record views, break-glass, refusals).
ACTIVITY_WHERE = "action IN ('emergency-access', 'view-record') OR outcome = 'denied'"


class AuditEvent(SQLModel, table=True):
    """One access or action, allowed or refused. Never updated: its seal is its own row.

    On PostgreSQL the table also has `txid` (xid8, the writing transaction, set by the
    database's default; not mapped here so that no insert can set it).
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_patient_time", "patient_id", "time"),
        Index("ix_audit_event_actor_time", "actor", "time"),
        Index("ix_audit_event_work_item_time", "work_item_id", "time"),
        # The compliance activity figure (views, refusals, break-glass) for the days not yet
        # rolled up into audit_day, read from the index alone (migration 0027).
        Index(
            "ix_audit_event_activity",
            "time",
            "action",
            "outcome",
            postgresql_where=text(ACTIVITY_WHERE),
            sqlite_where=text(ACTIVITY_WHERE),
        ),
    )

    # BIGINT on PostgreSQL; INTEGER on SQLite, where only that spelling autoincrements.
    id: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer(), "sqlite")
    )
    time: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    action: str = Field(max_length=40)
    outcome: str = Field(max_length=10)  # success, denied, failed
    actor: str | None = Field(default=None, max_length=100)  # username or token name
    actor_kind: str = Field(default="user", max_length=10)  # user, token, system, anonymous
    actor_roles: str = Field(default="", max_length=200)
    patient_id: int | None = None
    mrn_index: str | None = Field(default=None, max_length=64)
    work_item_id: int | None = None
    source_ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)
    request_id: str | None = Field(default=None, max_length=64)
    purpose: str | None = Field(default=None, max_length=40)
    detail: str | None = Field(default=None, max_length=500)  # non-PHI, e.g. "format=x12"


class AuditSeal(SQLModel, table=True):
    """An event's place in the hash chain, written once by the sealer (insert-only).

    `hash` is h_seq = SHA-256(h_{seq-1} || canonical(event)); h_0 is 32 zero bytes.
    `event_txid` is the writing transaction's id on PostgreSQL (0 on SQLite): the sealer's
    watermark is the (event_txid, event_id) of the newest seal.
    """

    __tablename__ = "audit_seal"

    seq: int = Field(
        primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    event_id: int = Field(sa_type=BigInteger, unique=True)
    event_txid: int = Field(default=0, sa_type=BigInteger)
    hash: str = Field(max_length=64)
    sealed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement "the chain had head `head_hash` at `seq`" (Ed25519, hex)."""

    __tablename__ = "audit_checkpoint"

    seq: int = Field(
        primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    head_hash: str = Field(max_length=64)
    signed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    key_id: str = Field(max_length=64)
    signature: str = Field(max_length=128)
