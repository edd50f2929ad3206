"""The chargemaster (the hospital's price list) and the X12 control-number counters.

Code and price data only: nothing here is patient data.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel


class ChargeItem(SQLModel, table=True):
    """One chargemaster line in force from `effective` until a later row of the same code.

    Rows are never deleted: a new price list adds rows with a later effective date, so an
    old date of service is still priced as it was then.
    """

    __tablename__ = "charge_item"
    __table_args__ = (
        UniqueConstraint("charge_code", "effective"),
        Index("ix_charge_item_hcpcs", "hcpcs", "effective"),
        Index("ix_charge_item_revenue", "revenue_code", "effective"),
    )

    id: int | None = Field(default=None, primary_key=True)
    charge_code: str = Field(max_length=20)
    description: str = Field(max_length=200)
    revenue_code: str = Field(max_length=4)  # NUBC UB-04 FL42, four digits
    hcpcs: str | None = Field(default=None, max_length=5)  # HCPCS / CPT; None: revenue only
    price_cents: int
    effective: date


class ControlCounter(SQLModel, table=True):
    """A persisted, increasing counter (X12 ISA13, GS06 and ST02 control numbers)."""

    __tablename__ = "control_counter"

    name: str = Field(max_length=20, primary_key=True)
    value: int = 0
