"""Settings and summaries of the management reports: the productivity standard per
encounter class, and the per-day summaries the dashboard figures read."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class ProductivityStandard(SQLModel, table=True):
    """The charts per hour a coder is expected to code for one encounter class (set by a
    supervisor on the standards page; every change is audited)."""

    __tablename__ = "productivity_standard"

    encounter_class: str = Field(max_length=30, primary_key=True)
    charts_per_hour: float
    updated_by: str = Field(max_length=100)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CodingDay(SQLModel, table=True):
    """Submits summed per local day (hospital zone), coder, encounter class and final DRG:
    what productivity and throughput read for whole days (issue 20 Speed; migration 0027).

    Kept in the submit's own transaction (an UPSERT beside its `work_item_event`), and built
    from the stored submits by the migration. Clear metadata only: ids, the class, the MS-DRG
    and its grouper version as kept on the work item, counts and seconds; no codes, no patient.
    `drg` and `drg_version` are "" when the chart has no final DRG (a NULL would not match in
    the unique key)."""

    __tablename__ = "coding_day"
    __table_args__ = (
        UniqueConstraint(
            "day", "coder_id", "encounter_class", "drg", "drg_version", name="uq_coding_day"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    day: date
    coder_id: int = Field(foreign_key="app_user.id")
    encounter_class: str = Field(max_length=30)
    drg: str = Field(default="", max_length=3)
    drg_version: str = Field(default="", max_length=5)
    charts: int = 0
    # Seconds of the leases that ended in these submits (submit minus its lease start).
    lease_seconds: float = 0.0


class AuditDay(SQLModel, table=True):
    """The compliance activity figure's counts of one closed local day (views, refusals,
    break-glass), rolled up once the day can get no more events (migration 0027). A day
    without rows is counted from the audit log itself, so every event is always counted."""

    __tablename__ = "audit_day"

    day: date = Field(primary_key=True)
    kind: str = Field(max_length=20, primary_key=True)
    events: int = 0
