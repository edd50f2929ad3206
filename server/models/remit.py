"""X12 835 remittances read back from payers: per claim and per line, with CARC/RARC codes.

Amounts, codes and the payer's claim number are not patient data; the member ids and names
an 835 carries are (they are dropped at parsing and never stored). The 835's trace number
(TRN02) is unique: posting the same remittance twice changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class Remittance(SQLModel, table=True):
    """One 835 transaction as received (envelope facts only, never the file itself)."""

    __tablename__ = "remittance"

    id: int | None = Field(default=None, primary_key=True)
    trace_number: str = Field(max_length=50, unique=True)  # TRN02
    payer_name: str = Field(max_length=60)  # N1*PR
    payer_id: str | None = Field(default=None, max_length=80)  # TRN03 / REF*2U
    paid_cents: int = Field(sa_type=BigInteger)  # BPR02
    claims: int
    sha256: str = Field(max_length=64)  # of the file as posted
    received_by: str = Field(max_length=100)  # username or token name
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RemitClaim(SQLModel, table=True):
    """One CLP: the payer's answer on one claim; work_item_id None when it matched none."""

    __tablename__ = "remit_claim"

    id: int | None = Field(default=None, primary_key=True)
    remittance_id: int = Field(foreign_key="remittance.id", index=True)
    claim_number: str = Field(max_length=38)  # CLP01: our patient control number (CLM01)
    work_item_id: int | None = Field(default=None, foreign_key="work_item.id", index=True)
    status: str = Field(max_length=10)  # paid | denied | partial | reversed | unmatched
    status_code: str = Field(max_length=2)  # CLP02
    charge_cents: int = Field(sa_type=BigInteger)  # CLP03
    paid_cents: int = Field(sa_type=BigInteger)  # CLP04
    patient_cents: int = Field(default=0, sa_type=BigInteger)  # CLP05
    denied_cents: int = Field(default=0, sa_type=BigInteger)  # denial adjustments (not CO-45, PR)
    payer_claim_number: str | None = Field(default=None, max_length=50)  # CLP07
    payer_name: str = Field(max_length=60)
    # For the denial reports: where the claim was coded and by whom, when the answer came.
    queue_id: int | None = Field(default=None, foreign_key="work_queue.id")
    coder_id: int | None = Field(default=None, foreign_key="app_user.id")
    # Sent back to the coder as a denial: the return the coder sees (None: not returned).
    claim_return_id: int | None = Field(default=None, foreign_key="claim_return.id")
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Undone by a later reversal (CLP02 = 22) from the payer: that reversal's row.
    reversed_by_id: int | None = Field(default=None, foreign_key="remit_claim.id")


class RemitLine(SQLModel, table=True):
    """One SVC: a service line as the payer adjudicated it."""

    __tablename__ = "remit_line"

    id: int | None = Field(default=None, primary_key=True)
    remit_claim_id: int = Field(foreign_key="remit_claim.id", index=True)
    line_no: int
    code: str = Field(max_length=48)  # SVC01 procedure code (without the HC qualifier)
    charge_cents: int = Field(sa_type=BigInteger)
    paid_cents: int = Field(sa_type=BigInteger)
    units: str | None = Field(default=None, max_length=15)


class RemitAdjustment(SQLModel, table=True):
    """One CAS group + CARC + amount, on the claim (line_no None) or on one line."""

    __tablename__ = "remit_adjustment"

    id: int | None = Field(default=None, primary_key=True)
    remit_claim_id: int = Field(foreign_key="remit_claim.id", index=True)
    line_no: int | None = None
    group: str = Field(max_length=2)  # CO | PR | OA | PI | CR
    reason: str = Field(max_length=5)  # CARC
    amount_cents: int = Field(sa_type=BigInteger)
    known: bool = True  # False: not in the shipped CARC list (kept, flagged)


class RemitRemark(SQLModel, table=True):
    """One RARC remark (LQ*HE on a line, MOA/MIA on the claim)."""

    __tablename__ = "remit_remark"

    id: int | None = Field(default=None, primary_key=True)
    remit_claim_id: int = Field(foreign_key="remit_claim.id", index=True)
    line_no: int | None = None
    code: str = Field(max_length=10)
    known: bool = True
