"""Code lines entered by coders (sealed), customer-loaded code sets, QA reviews and claims."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import LargeBinary
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class ItemCodes(SQLModel, table=True):
    """The diagnosis and procedure lines of a work item, sealed as one value.

    Codes tied to an encounter are clinical patient data: the lines are one AES-256-GCM
    sealed JSON value ({"diagnoses": [...], "procedures": [...]}) under the encounter's
    data key (records.service.seal_for_item, field "lines" of this row), never in clear.
    """

    __tablename__ = "item_codes"

    work_item_id: int = Field(foreign_key="work_item.id", primary_key=True)
    sealed_lines: bytes = Field(sa_type=LargeBinary)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ItemAbstract(SQLModel, table=True):
    """The inpatient abstract of a work item (NUBC admission and discharge codes, attending
    NPI, admitting diagnosis): patient data, one sealed JSON value under the encounter's data
    key (field "abstract" of this row), never in clear."""

    __tablename__ = "item_abstract"

    work_item_id: int = Field(foreign_key="work_item.id", primary_key=True)
    sealed_abstract: bytes = Field(sa_type=LargeBinary)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CodeSetEntry(SQLModel, table=True):
    """A code of a loaded code set (CPT from the customer's licensed file, HCPCS, PCS)."""

    __tablename__ = "code_set_entry"

    system: str = Field(max_length=10, primary_key=True)
    code: str = Field(max_length=10, primary_key=True)
    description: str = Field(default="", max_length=300)


class HcpcsPeriod(SQLModel, table=True):
    """A HCPCS Level II code's dates as one CMS quarterly file gives them (record layout:
    code added date, action effective date, termination date, action code). Loading a newer
    quarter adds its rows and keeps the older ones (the same dates twice are one row); the
    newest row of a code (by action effective date) decides validity on a date of service."""

    __tablename__ = "hcpcs_period"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=5, index=True)
    added: date | None = None
    action_effective: date | None = None
    terminated: date | None = None  # the last date of service the code may be used
    action_code: str = Field(default="", max_length=1)
    source: str = Field(max_length=200)  # the file (and so the quarter) it came from
    loaded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class QaReview(SQLModel, table=True):
    """A supervisor's decision on a sampled item: accepted, or corrected (its findings are
    `qa_finding` rows, one per difference)."""

    __tablename__ = "qa_review"

    id: int | None = Field(default=None, primary_key=True)
    work_item_id: int = Field(foreign_key="work_item.id", index=True)
    coder_id: int = Field(foreign_key="app_user.id", index=True)
    reviewer_id: int = Field(foreign_key="app_user.id")
    outcome: str = Field(max_length=10)  # accepted | corrected
    # An inpatient stay's MS-DRG as the coder submitted it and after QA (a correction may
    # shift it: who is reviewer_id, why the sealed reason). None for outpatient claims.
    coder_drg: str | None = Field(default=None, max_length=3)
    qa_drg: str | None = Field(default=None, max_length=3)
    # Their relative weights (CMS Table 5) and the payment difference (weight change × the
    # base rate in settings); None without a DRG or a weight table.
    coder_weight: float | None = None
    qa_weight: float | None = None
    payment_difference: float | None = None
    # Code lines the reviewer looked at (the coder's, plus lines the reviewer added): the
    # denominator of code-level accuracy. 0 on reviews before the worksheet.
    codes_reviewed: int = 0
    # The reviewer's free text (may name the patient): sealed under the encounter's data key.
    sealed_reason: bytes | None = Field(default=None, sa_type=LargeBinary)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ClaimRecord(SQLModel, table=True):
    """A work item billed under the payer's claim number."""

    __tablename__ = "claim_record"

    id: int | None = Field(default=None, primary_key=True)
    work_item_id: int = Field(foreign_key="work_item.id", index=True)
    claim_number: str = Field(max_length=50, index=True)
    # The X12 interchange (ISA13) a batch export sent it in; None: marked billed by hand.
    interchange: int | None = Field(default=None, index=True)
    billed_by: str = Field(max_length=100)  # username or token name
    billed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ClaimReturn(SQLModel, table=True):
    """A biller sending a coded item back to its coder, with the biller's reason."""

    __tablename__ = "claim_return"

    id: int | None = Field(default=None, primary_key=True)
    work_item_id: int = Field(foreign_key="work_item.id", index=True)
    coder_id: int | None = Field(default=None, foreign_key="app_user.id")
    # A payer's denial sent to a denials queue (by rule, or no coder on record), not a coder.
    queue_id: int | None = Field(default=None, foreign_key="work_queue.id")
    # The biller's free text (may name the patient): sealed under the encounter's data key.
    sealed_reason: bytes = Field(sa_type=LargeBinary)
    returned_by: str = Field(max_length=100)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
