"""Request and response models of the billing API (no patient data in any of them)."""

from __future__ import annotations

from datetime import date as date_
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from server.auth.deps import MAX_ROW_ID


class BilledRequest(BaseModel):
    """`POST /api/v1/billing/{id}/billed`: the payer's or clearinghouse's claim number."""

    model_config = ConfigDict(extra="forbid")

    claim_number: str = Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9._/-]+$")


class ReturnRequest(BaseModel):
    """`POST /api/v1/billing/{id}/return`: why the coding goes back to its coder."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class ReadyEncounter(BaseModel):
    """Encounter fields in clear (routing metadata, no patient data)."""

    class_: str = Field(serialization_alias="class")
    facility: str | None
    service_type: str | None
    payer_class: str | None
    start: datetime | None
    end: datetime | None


class ReadyItem(BaseModel):
    """One item ready to bill."""

    id: int
    queue: str
    encounter: ReadyEncounter
    coded_by: str | None
    coded_at: datetime | None


class ReadyList(BaseModel):
    """A page of items ready to bill."""

    items: list[ReadyItem]
    next_cursor: str | None = None


class BatchRequest(BaseModel):
    """`POST /api/v1/billing/batch`: the claims to send as one interchange, by item id, or
    every claim ready to bill that was coded on `date` (UTC)."""

    model_config = ConfigDict(extra="forbid")

    items: list[Annotated[int, Field(ge=1, le=MAX_ROW_ID)]] | None = Field(
        default=None, min_length=1, max_length=500
    )
    date: date_ | None = None


class BilledItem(BaseModel):
    """One billed claim (no patient data)."""

    id: int
    claim_number: str
    interchange: int | None
    billed_by: str
    billed_at: datetime
    class_: str = Field(serialization_alias="class")
    facility: str | None
    start: datetime | None


class BilledList(BaseModel):
    """A page of billed claims, newest first."""

    items: list[BilledItem]
    next_cursor: str | None = None
