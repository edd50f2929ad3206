"""Request and response models of the coding API (codes only, never patient data)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

DxCode = Annotated[str, StringConstraints(max_length=10)]


class Evidence(BaseModel):
    """A passage of the chart that supports a code line: a document and a character range of
    its text as the chart shows it (a link, never a copy of the words)."""

    model_config = ConfigDict(extra="forbid")

    document: int = Field(ge=1, le=2**31 - 1)
    start: int = Field(ge=0, le=10_000_000)
    end: int = Field(ge=0, le=10_000_000)


class DiagnosisLine(BaseModel):
    """One diagnosis; the first is the principal (first-listed) diagnosis."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=10)
    poa: str | None = Field(default=None, max_length=1)
    evidence: list[Evidence] = Field(default_factory=list, max_length=10)


class ProcedureLine(BaseModel):
    """One procedure or service line."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=10)
    system: Literal["CPT", "HCPCS", "PCS"] = "CPT"
    modifiers: list[str] = Field(default_factory=list, max_length=4)
    units: int = Field(default=1, ge=1, le=999)
    dx_pointers: list[int] = Field(default_factory=list, max_length=4)
    charge: float = Field(default=0.0, ge=0, le=10_000_000)
    evidence: list[Evidence] = Field(default_factory=list, max_length=10)
    # A chargemaster line the coder picked: it sets the line's HCPCS/CPT code (when left
    # blank), revenue code, description and price on the claim.
    charge_code: str | None = Field(default=None, max_length=20)


class Codes(BaseModel):
    """`PUT /api/v1/work/{id}/codes`: every line of the item (replaces the draft)."""

    model_config = ConfigDict(extra="forbid")

    diagnoses: list[DiagnosisLine] = Field(default_factory=list, max_length=50)
    procedures: list[ProcedureLine] = Field(default_factory=list, max_length=50)
    # Excludes1 pairs the coder recorded as unrelated conditions (the guideline's exception),
    # e.g. [["E10.9", "E11.9"]]: stored sealed with the lines, and audited with the save.
    unrelated: list[tuple[DxCode, DxCode]] = Field(default_factory=list, max_length=25)


class Problem(BaseModel):
    """A validation error or warning, pointing at the line and field it is about."""

    loc: list[str | int]
    code: str | None = None  # the edit id (ncci-ptp, mue, excludes1, code-unknown, ...)
    msg: str
    # An Excludes1 pair ("E10.9|E11.9") the workbench offers to record as unrelated; not in JSON.
    pair: str | None = Field(default=None, exclude=True)


class CcMcc(BaseModel):
    """A secondary diagnosis that is a CC or an MCC, and whether the principal excludes it."""

    code: str  # as the coder wrote it
    level: Literal["CC", "MCC"]
    excluded: bool = False  # excluded as CC/MCC by the principal diagnosis (CC exclusion)


class DrgStep(BaseModel):
    """The DRG one more CC or MCC would move the stay to (which code is never suggested)."""

    level: Literal["CC", "MCC"]
    drg: str
    title: str | None


class DrgView(BaseModel):
    """The working MS-DRG of an inpatient stay (`drg` in the work item and codes answers)."""

    version: str  # MS-DRG grouper version, e.g. "43.0"
    drg: str | None  # three digits ("292"); None when the stay does not group
    title: str | None
    mdc: str | None  # two digits ("05")
    mdc_title: str | None = None
    weight: float | None = None  # CMS Table 5 relative weight (null: no table for the version)
    gmlos: float | None = None  # geometric mean length of stay, Table 5 likewise
    cc_mcc: list[CcMcc] = Field(default_factory=list)
    # With one more CC / MCC the stay would group to (when that is what separates it).
    one_more: list[DrgStep] = Field(default_factory=list)
    problem: str | None = None  # why the stay does not group (coder-readable)


class ValidationView(BaseModel):
    """What `PUT .../codes` answers: errors block Submit, warnings do not; `drg` is the
    working MS-DRG of an inpatient stay (null for outpatient)."""

    errors: list[Problem]
    warnings: list[Problem]
    drg: DrgView | None = None


class SubmitView(BaseModel):
    """What `POST .../submit` answers."""

    id: int
    status: str
    coded_at: datetime | None
    warnings: list[Problem]
    drg: DrgView | None = None  # the final DRG of an inpatient stay (recorded on the item)


class SearchHit(BaseModel):
    """A code found by search."""

    system: str
    code: str
    description: str
    billable: bool


class SearchResult(BaseModel):
    """Search results."""

    items: list[SearchHit]
    next_cursor: str | None = None


class AccuracyView(BaseModel):
    """A coder's QA record."""

    coder: str
    reviewed: int
    accepted: int
    corrected: int
    accuracy_percent: float | None


class QaItemView(BaseModel):
    """An item waiting for QA (no patient data)."""

    id: int
    queue: str
    coded_by: str | None
    coded_at: datetime | None
