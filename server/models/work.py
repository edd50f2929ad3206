"""Work items (one per encounter) and every status change they go through."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class Status(StrEnum):
    """Where a work item is in its life."""

    ready = "ready"
    in_progress = "in_progress"
    on_hold = "on_hold"
    qa_review = "qa_review"
    ready_for_billing = "ready_for_billing"
    billed = "billed"
    returned = "returned"
    cancelled = "cancelled"  # the visit was cancelled at the source (HL7 A11) before coding


class WorkItem(SQLModel, table=True):
    """An encounter waiting to be coded, leased to at most one coder at a time."""

    __tablename__ = "work_item"
    __table_args__ = (
        Index(
            "ix_work_item_ready",
            "queue_id",
            text("priority DESC"),
            "due_at",
            "id",
            postgresql_where=text("status = 'ready'"),
            sqlite_where=text("status = 'ready'"),
        ),
        Index("ix_work_item_lease_owner", "lease_owner_id", "status"),
        Index("ix_work_item_status", "status", "lease_expires_at"),
        # Case-mix, capture and DRG shifts: inpatient stays by submit time.
        Index(
            "ix_work_item_coded_at",
            "coded_at",
            postgresql_where=text("final_drg IS NOT NULL"),
            sqlite_where=text("final_drg IS NOT NULL"),
        ),
        # Case-mix reads every column it needs from here (an index-only scan; 0027).
        Index(
            "ix_work_item_coded_mix",
            "coded_at",
            "final_drg",
            "final_drg_version",
            "final_cc_count",
            "final_mcc_count",
            "coded_by_id",
            "queue_id",
            postgresql_where=text("final_drg IS NOT NULL"),
            sqlite_where=text("final_drg IS NOT NULL"),
        ),
        # DNFB: unbilled items by status and discharge, grouped by queue, class or payer
        # class, read from the index alone.
        Index(
            "ix_work_item_dnfb",
            "status",
            "discharged_at",
            "queue_id",
            "encounter_class",
            "payer_class",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    encounter_id: int = Field(foreign_key="encounter.id", unique=True)
    queue_id: int = Field(foreign_key="work_queue.id")
    status: str = Field(default=Status.ready, max_length=20)
    priority: int = 0
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_owner_id: int | None = Field(default=None, foreign_key="app_user.id")
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    hold_reason: str | None = Field(default=None, max_length=100)
    coded_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    coded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The MS-DRG of an inpatient stay (in clear: case-mix reports need it, and a DRG names no
    # patient): the baseline (the first saved draft that grouped) and the final (at submit),
    # each with its grouper version ("43.0").
    baseline_drg: str | None = Field(default=None, max_length=3)
    baseline_drg_version: str | None = Field(default=None, max_length=5)
    final_drg: str | None = Field(default=None, max_length=3)
    final_drg_version: str | None = Field(default=None, max_length=5)
    # How many secondaries of the final grouping act as CC and as MCC (counts, no codes:
    # the CC/MCC capture rate needs them in clear). None for outpatient (migration 0019).
    final_cc_count: int | None = None
    final_mcc_count: int | None = None
    # The encounter's discharge moment (end of service, else start), kept beside the status
    # for DNFB (migration 0027): set when the item is written and whenever the encounter's
    # dates or classes change (server.reports.summary keeps them), so DNFB needs no join to
    # the encounter.
    discharged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The encounter's class and payer class, kept beside it the same way (DNFB groups by them).
    encounter_class: str | None = Field(default=None, max_length=40)
    payer_class: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WorkItemEvent(SQLModel, table=True):
    """A status change or action on a work item: who, when, from what to what."""

    __tablename__ = "work_item_event"
    __table_args__ = (
        Index("ix_work_item_event_action_at", "action", "at"),  # the submits of a window
        Index("ix_work_item_event_item_id", "work_item_id", "id"),  # an item's lease start
    )

    id: int | None = Field(default=None, primary_key=True)
    work_item_id: int = Field(foreign_key="work_item.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor_id: int | None = Field(default=None, foreign_key="app_user.id", index=True)
    action: str = Field(max_length=30)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str | None = Field(default=None, max_length=20)
    reason: str | None = Field(default=None, max_length=200)  # picked from a list, never free text
    # Who holds the item after this event (migration 0003): tells an old holder's late
    # request (409 lease expired) from a stranger's (404), and feeds productivity figures.
    owner_id: int | None = Field(default=None, foreign_key="app_user.id", index=True)
    # On a submit: when the lease it ends started (migration 0023; backfilled). Productivity
    # sums submit minus this over a window's submits without a look-up per submit.
    lease_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
