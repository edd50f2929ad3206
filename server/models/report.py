"""Settings of the management reports: the productivity standard per encounter class."""

from __future__ import annotations

from datetime import datetime

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
