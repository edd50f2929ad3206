"""Request and response models of the queue API (no patient data in any of them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from server.models.base import utcnow
from server.queue.service import ItemRow, QueueStats


class NextRequest(BaseModel):
    """`POST /api/v1/work/next`: optionally one queue to pull from."""

    model_config = ConfigDict(extra="forbid")

    queue: str | None = Field(default=None, max_length=64)


class HoldRequest(BaseModel):
    """Put an item on hold: a reason from the configured list and an optional note.

    The note may contain patient data; it is accepted but not stored.
    """

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=100)
    note: str = Field(default="", max_length=2000)


class AssignRequest(BaseModel):
    """Lease an item straight to a coder."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)


class MoveRequest(BaseModel):
    """Move an item to another queue."""

    model_config = ConfigDict(extra="forbid")

    queue: str = Field(min_length=1, max_length=64)


class PriorityRequest(BaseModel):
    """Change an item's priority (higher is pulled first)."""

    model_config = ConfigDict(extra="forbid")

    priority: int = Field(ge=-1000, le=1000)


class QueueCreate(BaseModel):
    """Create a queue."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=300)


class MembersRequest(BaseModel):
    """The complete list of coders allowed to pull from a queue."""

    model_config = ConfigDict(extra="forbid")

    usernames: list[str] = Field(max_length=1000)


class WorkItemView(BaseModel):
    """A work item as lists and lease answers show it: ids, queue, status, lease, times."""

    id: int
    queue: str
    status: str
    priority: int
    due_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    hold_reason: str | None
    created_at: datetime
    updated_at: datetime
    age_seconds: int

    @classmethod
    def of(cls, row: ItemRow) -> WorkItemView:
        """Build the view of one listed item."""
        item = row.item
        assert item.id is not None  # noqa: S101
        return cls(
            id=item.id,
            queue=row.queue,
            status=item.status,
            priority=item.priority,
            due_at=item.due_at,
            lease_owner=row.owner,
            lease_expires_at=item.lease_expires_at,
            hold_reason=item.hold_reason,
            created_at=item.created_at,
            updated_at=item.updated_at,
            age_seconds=max(0, int((utcnow() - item.created_at).total_seconds())),
        )


class WorkItemList(BaseModel):
    """A page of work items."""

    items: list[WorkItemView]
    next_cursor: str | None = None


class QueueView(BaseModel):
    """One queue on the supervisor dashboard."""

    name: str
    ready: int
    in_progress: int
    on_hold: int
    oldest_ready_age_seconds: int | None
    done_today: int
    members: list[str]

    @classmethod
    def of(cls, stats: QueueStats) -> QueueView:
        """Build the view of one queue's figures."""
        return cls(**stats.__dict__)


class QueueList(BaseModel):
    """Every queue with its figures."""

    items: list[QueueView]
    next_cursor: str | None = None


class MembersView(BaseModel):
    """A queue's members after a change."""

    name: str
    members: list[str]
