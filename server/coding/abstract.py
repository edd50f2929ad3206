"""The inpatient abstract of a work item: admission type and point of origin, discharge
status (the NUBC UB-04 codes of `nubc`), admission hour, attending and operating NPIs,
admitting diagnosis, the date of each ICD-10-PCS procedure and a newborn's birth weight.
Patient data: one sealed JSON value per item under its encounter's data key."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlmodel import Session

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.billing.x12 import npi_ok
from server.coding import nubc
from server.errors import ValidationFailed
from server.models import Encounter, ItemAbstract
from server.models.base import utcnow
from server.queue import service as queue_service
from server.records import service as records_service
from server.records.service import ItemKey

FIELD = "abstract"

# A newborn's birth weight in grams (NUBC value code 54): the plausible range, the MCE's
# lowest weight class (< 500 g) included.
BIRTH_WEIGHT_MIN, BIRTH_WEIGHT_MAX = 100, 9999
# The MS-DRGs of MDC 15 (newborns and other neonates): a stay grouping here needs the weight.
NEWBORN_DRGS = frozenset(str(n) for n in range(789, 796))

# An ICD-10-PCS code: seven characters, digits and letters but O and I.
PcsCode = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_upper=True, pattern=r"^[0-9A-HJ-NP-Za-hj-np-z]{7}$"
    ),
]
Npi = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{10}$")]


def _code(value: str | None, values: dict[str, str], name: str) -> str | None:
    if value is None or not value.strip():
        return None
    code = value.strip().upper()
    if code not in values:
        raise ValueError(f"not an NUBC {name} code")  # the value not echoed: patient data
    return code


class Abstract(BaseModel):
    """The abstract as stored and answered (every field optional; codes validated)."""

    model_config = ConfigDict(extra="forbid")

    admission_type: str | None = Field(default=None, max_length=2)
    admission_source: str | None = Field(default=None, max_length=2)
    discharge_status: str | None = Field(default=None, max_length=2)
    admission_hour: int | None = Field(default=None, ge=0, le=23)  # NUBC FL13: 00-23
    # The admission's date on the source's own clock (the stay's start as the source wrote
    # it, with its offset): FL13's hour goes with this date, not with the UTC one.
    admission_date: date | None = None
    attending_npi: Npi | None = None
    operating_npi: Npi | None = None
    # An ICD-10-CM code's shape (it goes on the 837I as is: no X12 delimiters get through).
    admitting_diagnosis: str | None = Field(
        default=None, max_length=8, pattern=r"^\s*[A-Za-z][0-9A-Za-z]{2}(\.?[0-9A-Za-z]{1,4})?\s*$"
    )
    # The date each ICD-10-PCS procedure was performed (within the stay: checked on save).
    procedure_dates: dict[PcsCode, date] = Field(default_factory=dict, max_length=100)
    birth_weight_grams: int | None = Field(default=None, ge=BIRTH_WEIGHT_MIN, le=BIRTH_WEIGHT_MAX)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_none(cls, data: Any) -> Any:
        """A blank field (a form's empty input) is not entered; no dates is none dated."""
        if isinstance(data, dict):
            data = {k: None if isinstance(v, str) and not v.strip() else v for k, v in data.items()}
            if "procedure_dates" in data and data["procedure_dates"] is None:
                data["procedure_dates"] = {}
        return data

    @field_validator("attending_npi", "operating_npi")
    @classmethod
    def _npi(cls, v: str | None, info: ValidationInfo) -> str | None:
        stored = bool(info.context and info.context.get("stored"))
        # Checked as entered; an NPI saved before the check-digit rule still opens.
        if v is not None and not stored and not npi_ok(v):
            raise ValueError("not a valid NPI (its check digit is wrong)")
        return v

    @field_validator("admission_type")
    @classmethod
    def _type(cls, v: str | None) -> str | None:
        return _code(v, nubc.ADMISSION_TYPE, "admission type (FL14)")

    @field_validator("admission_source")
    @classmethod
    def _source(cls, v: str | None) -> str | None:
        return _code(v, nubc.ADMISSION_SOURCE, "point of origin (FL15)")

    @field_validator("discharge_status")
    @classmethod
    def _status(cls, v: str | None) -> str | None:
        if v is not None and v.strip().isdigit() and len(v.strip()) == 1:
            v = "0" + v.strip()
        return _code(v, nubc.DISCHARGE_STATUS, "discharge status (FL17)")

    @field_validator("admitting_diagnosis")
    @classmethod
    def _dx(cls, v: str | None) -> str | None:
        return v.strip().upper() or None if v is not None else None


def get_abstract(session: Session, *, key: ItemKey) -> Abstract:
    """The item's abstract (empty if none), opened with the key of an audited view or use."""
    row = session.get(ItemAbstract, key.work_item_id)
    return open_abstract(key=key, sealed=row.sealed_abstract if row is not None else None)


def open_abstract(*, key: ItemKey, sealed: bytes | None) -> Abstract:
    """The item's sealed abstract (`item_abstract.sealed_abstract`, None: no row), opened with
    the key of an audited view or use; for a caller that read the row itself (the chart)."""
    if sealed is None:
        return Abstract()
    return Abstract.model_validate(
        key.open(
            table=ItemAbstract.__tablename__, row_id=key.work_item_id, field=FIELD, sealed=sealed
        ),
        context={"stored": True},
    )


def stay_dates(session: Session, *, encounter_id: int) -> tuple[date | None, date | None]:
    """The stay's admission and discharge dates (the encounter's period, in clear)."""
    encounter = session.get(Encounter, encounter_id)
    start = encounter.start_at if encounter else None
    end = encounter.end_at if encounter else None
    return (start.date() if start else None, end.date() if end else None)


def check_procedure_dates(
    abstract: Abstract, *, admitted: date | None, discharged: date | None
) -> None:
    """422 naming each procedure date outside the stay (admission..discharge)."""
    details = [
        {
            "loc": ["body", "procedure_dates", code],
            "msg": "the procedure date is outside the stay (admission to discharge)",
            "type": "outside_stay",
        }
        for code, when in abstract.procedure_dates.items()
        if (admitted is not None and when < admitted)
        or (discharged is not None and when > discharged)
    ]
    if details:
        raise ValidationFailed("The abstract is not valid.", details=details)


def birth_weight_needed(abstract: Abstract, *, age: int | None, drg: str | None) -> bool:
    """Whether the stay needs a birth weight: a newborn admission (type 4), a patient aged
    0 at admission, or a newborn MS-DRG (789-795)."""
    return abstract.admission_type == "4" or age == 0 or (drg or "") in NEWBORN_DRGS


def save_abstract(
    session: Session,
    *,
    actor: Principal,
    work_item_id: int,
    abstract: Abstract,
    only: set[str] | None = None,
) -> Abstract:
    """Set the abstract of an item leased to the caller (audited as a code save); with
    `only`, just those fields (the workbench form's), the others kept as they were."""
    item = queue_service.leased_item(session, actor=actor, work_item_id=work_item_id)
    # Checked before the chart is opened: a refused save opens nothing (the dates are clear).
    admitted, discharged = stay_dates(session, encounter_id=item.encounter_id)
    check_procedure_dates(abstract, admitted=admitted, discharged=discharged)
    key = records_service.open_for_use(
        session,
        actor=actor,
        work_item_id=work_item_id,
        action=audit_service.Action.code_save,
        purpose="TREAT",
        detail="abstract",
    )
    if only is not None:
        kept = get_abstract(session, key=key).model_dump()
        kept.update({name: getattr(abstract, name) for name in only})
        abstract = Abstract.model_validate(kept)
    return store_abstract(session, key=key, abstract=abstract)


def store_abstract(session: Session, *, key: ItemKey, abstract: Abstract) -> Abstract:
    """Seal the item's abstract with the key of an audited use (replacing the earlier one)."""
    work_item_id = key.work_item_id
    sealed = key.seal(
        table=ItemAbstract.__tablename__,
        row_id=work_item_id,
        field=FIELD,
        value=abstract.model_dump(mode="json"),
    )
    row = session.get(ItemAbstract, work_item_id)
    if row is None:
        row = ItemAbstract(work_item_id=work_item_id, sealed_abstract=sealed)
    else:
        row.sealed_abstract, row.updated_at = sealed, utcnow()
    session.add(row)
    session.flush()
    return abstract
