"""Queues, who may pull from them, and the rules that route encounters into them."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class Queue(SQLModel, table=True):
    """A named list of work items that a set of coders pull from."""

    __tablename__ = "work_queue"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    description: str = Field(default="", max_length=300)
    qa_sample_percent: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class QueueMember(SQLModel, table=True):
    """A coder allowed to pull from a queue."""

    __tablename__ = "queue_member"

    queue_id: int = Field(foreign_key="work_queue.id", primary_key=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="app_user.id", primary_key=True, ondelete="CASCADE")


class RoutingRule(SQLModel, table=True):
    """An ordered rule: the first whose non-empty fields all match picks queue and priority."""

    __tablename__ = "routing_rule"

    id: int | None = Field(default=None, primary_key=True)
    position: int = Field(default=0, index=True)
    facility: str | None = Field(default=None, max_length=200)
    encounter_class: str | None = Field(default=None, max_length=40)
    service_type: str | None = Field(default=None, max_length=100)
    payer_class: str | None = Field(default=None, max_length=100)
    queue_id: int = Field(foreign_key="work_queue.id")
    priority: int = 0
    is_active: bool = True
    # When set, a matching encounter is billed as this class (e.g. `professional`: the
    # professional fee of a hospital visit goes out on an 837P). Migration 0002.
    set_class: str | None = Field(default=None, max_length=40)
