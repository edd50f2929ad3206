"""Claim edits: CMS NCCI procedure-to-procedure pairs and MUE limits (effective-dated,
loaded from CMS's quarterly files), the files loaded, and how strict each edit is per payer
class. Code data only: nothing here is patient data.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class NcciPtpEdit(SQLModel, table=True):
    """One NCCI PTP edit: column 2 code is not paid with column 1 code on one date of service.

    Rows are never deleted: a later quarter adds new edits and fills in deletion dates, so
    an old date of service is still checked against the edits in force then.
    """

    __tablename__ = "ncci_ptp_edit"
    __table_args__ = (
        UniqueConstraint("setting", "column1", "column2", "effective"),
        Index("ix_ncci_ptp_edit_lookup", "setting", "column1", "column2"),
    )

    id: int | None = Field(default=None, primary_key=True)
    setting: str = Field(max_length=20)  # practitioner | hospital
    column1: str = Field(max_length=5)
    column2: str = Field(max_length=5)
    effective: date
    deleted: date | None = None  # the edit applies to dates of service before this day
    modifier: str = Field(max_length=1)  # 0 never; 1 with an NCCI-associated modifier; 9 none
    rationale: str = Field(default="", max_length=200)
    prior_1996: bool = False
    quarter: str = Field(max_length=40)  # the quarterly file it came from (e.g. 2026Q1)


class MueEdit(SQLModel, table=True):
    """One MUE: the most units of a code reported for one patient on one date of service."""

    __tablename__ = "mue_edit"
    __table_args__ = (
        UniqueConstraint("setting", "code", "effective"),
        Index("ix_mue_edit_lookup", "setting", "code"),
        Index("ix_mue_edit_table", "setting", "effective"),
    )

    id: int | None = Field(default=None, primary_key=True)
    setting: str = Field(max_length=20)  # practitioner | hospital | dme
    code: str = Field(max_length=5)
    effective: date  # the table's first day; the newest table loaded replaces older ones
    value: int
    adjudication: int  # 1 per line; 2 per date of service (policy); 3 per date (clinical)
    rationale: str = Field(default="", max_length=200)
    quarter: str = Field(max_length=40)


class EditFileLoad(SQLModel, table=True):
    """A CMS edit file that was loaded (the same file again is recognised and skipped)."""

    __tablename__ = "edit_file_load"
    __table_args__ = (UniqueConstraint("kind", "setting", "sha256"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)  # ncci-ptp | mue
    setting: str = Field(max_length=20)
    sha256: str = Field(max_length=64)
    file_name: str = Field(max_length=200)
    quarter: str = Field(max_length=40)
    rows: int
    loaded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EditLevel(SQLModel, table=True):
    """How strict an edit is for a payer class: error, warning or off (default: its own)."""

    __tablename__ = "edit_level"

    payer_class: str = Field(max_length=100, primary_key=True)  # or "*" for every payer
    edit: str = Field(max_length=60, primary_key=True)
    level: str = Field(max_length=10)  # error | warning | off
    updated_by: str = Field(max_length=100)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
