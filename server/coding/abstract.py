"""The inpatient abstract of a work item: admission type and point of origin, discharge
status (the NUBC UB-04 codes of `nubc`), admission hour, attending NPI and admitting
diagnosis. Patient data: one sealed JSON value per item under its encounter's data key."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.coding import nubc
from server.models import ItemAbstract
from server.models.base import utcnow
from server.queue import service as queue_service
from server.records import service as records_service
from server.records.service import ItemKey

FIELD = "abstract"


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
    admission_hour: int | None = Field(default=None, ge=0, le=23)
    attending_npi: str | None = Field(default=None, pattern=r"^\d{10}$")
    # An ICD-10-CM code's shape (it goes on the 837I as is: no X12 delimiters get through).
    admitting_diagnosis: str | None = Field(
        default=None, max_length=8, pattern=r"^\s*[A-Za-z][0-9A-Za-z]{2}(\.?[0-9A-Za-z]{1,4})?\s*$"
    )

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
    if row is None:
        return Abstract()
    return Abstract.model_validate(
        key.open(
            table=ItemAbstract.__tablename__,
            row_id=key.work_item_id,
            field=FIELD,
            sealed=row.sealed_abstract,
        )
    )


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
    queue_service.leased_item(session, actor=actor, work_item_id=work_item_id)
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
