"""Records: the encounter as it arrives (our JSON form) and as it is shown (`*View`).

`EncounterIn` is the one validated structure both ingest paths produce: `POST
/api/v1/encounters` takes it as is, and the FHIR bundle parser builds it from a Synthea
bundle. `RecordView` is what `open_record` returns; it exists only in memory.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

# No control characters in what may be stored in clear (PostgreSQL refuses NUL in text).
PLAIN = r"^[^\x00-\x1f\x7f]*$"
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Code = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=PLAIN)
]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=PLAIN)
]
QueueName = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
]

# Times a chart can carry. Beyond them date arithmetic overflows (a due date three days after
# 9999-12-31, or 0001-01-01T00:00+23:59 in UTC), which answered 500 instead of 422.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError("must fall between 1900-01-01 and 2199-12-31 (UTC)")
    return value


ChartTime = Annotated[datetime, AfterValidator(_in_range)]


def safe_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as location and message only (their `input` may hold patient data)."""
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
        for e in exc.errors()
    ]


class Modality(StrEnum):
    """A telehealth visit: the patient elsewhere than home, or at home (CMS POS 02 / 10)."""

    telehealth = "telehealth"
    telehealth_home = "telehealth-home"


class EncounterClass(StrEnum):
    """How the visit is billed: decides 837I (inpatient) or 837P and the routing."""

    inpatient = "inpatient"
    emergency = "emergency"
    outpatient = "outpatient"
    professional = "professional"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AddressIn(_In):
    """A postal address (sealed)."""

    line: list[Text] = Field(default_factory=list, max_length=5)
    city: Text | None = None
    state: Text | None = None
    postal_code: Text | None = None
    country: Text | None = None


class IdentifierIn(_In):
    """Another identifier of the patient (driver's licence, passport...): sealed."""

    type: Text | None = None
    system: Text | None = None
    value: Name


class PatientIn(_In):
    """The patient: every field here is sealed; the MRN is also blind-indexed."""

    mrn: Name
    name: Name
    birth_date: date | None = None
    sex: Annotated[str, StringConstraints(max_length=20)] | None = None
    ssn: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)] | None = None
    address: AddressIn | None = None
    identifiers: list[IdentifierIn] = Field(default_factory=list, max_length=50)


class PayerIn(_In):
    """Who pays: the name and the member id (sealed); the payer class goes in clear."""

    name: Name | None = None
    member_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = (
        None
    )
    # The payer's id at the clearinghouse (Coverage.payor's identifier): 837 loop 2010BB.
    payer_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=80)] | None = None


class DocumentIn(_In):
    """A clinical note (title, type and text sealed)."""

    title: Text | None = None
    type: Text | None = None
    date: ChartTime | None = None
    text: Annotated[str, StringConstraints(min_length=1, max_length=5_000_000)]


class CodeHint(_In):
    """A code the source system already attached (a hint for the coder, not a final code)."""

    system: Text | None = None
    code: Code
    display: Text | None = None


class HintsIn(_In):
    """Conditions, procedures and claim lines from the source (sealed)."""

    conditions: list[CodeHint] = Field(default_factory=list, max_length=1000)
    procedures: list[CodeHint] = Field(default_factory=list, max_length=1000)
    claim_lines: list[CodeHint] = Field(default_factory=list, max_length=1000)
    # The source's own name for the encounter's service type (the clear column holds its code).
    service_type_display: str | None = Field(default=None, max_length=300)


class AdmissionIn(_In):
    """The admission and discharge the source sends (sealed into the item's abstract): point
    of origin (FL15) and discharge status (FL17), NUBC codes not listed dropped; admission
    hour, attending and operating NPIs, and the date of each ICD-10-PCS procedure."""

    admission_source: str | None = Field(default=None, max_length=2)
    discharge_status: str | None = Field(default=None, max_length=2)
    admission_hour: int | None = Field(default=None, ge=0, le=23)
    attending_npi: str | None = Field(default=None, pattern=r"^[0-9]{10}$")
    operating_npi: str | None = Field(default=None, pattern=r"^[0-9]{10}$")
    # ICD-10-PCS code -> the date it was performed (dates outside the stay are dropped).
    procedure_dates: dict[Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{7}$")], date] = (
        Field(default_factory=dict, max_length=100)
    )


Npi = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{10}$")]


class ProviderIn(_In):
    """A practitioner of the encounter (FHIR Encounter.participant): NPI and name in clear.

    Provider names and NPIs are public (the NPI registry), not patient data; queries are
    addressed to them by NPI.
    """

    npi: Npi
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=200, pattern=PLAIN)
    ] = ""
    role: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=40, pattern=PLAIN)]
        | None
    ) = None


class EncounterIn(_In):
    """One encounter in Chartdesk's own JSON form (README: "Encounter JSON")."""

    source_system: Name
    external_id: Name
    encounter_class: EncounterClass = Field(alias="class")
    facility: Name | None = None
    service_type: Code | None = None
    payer_class: Code | None = None
    start: ChartTime | None = None
    end: ChartTime | None = None
    patient: PatientIn
    payer: PayerIn | None = None
    documents: list[DocumentIn] = Field(default_factory=list, max_length=500)
    hints: HintsIn = Field(default_factory=HintsIn)
    providers: list[ProviderIn] = Field(default_factory=list, max_length=100)
    admission: AdmissionIn | None = None  # prefills the item's abstract
    # How the visit took place: a telehealth visit (FHIR class VR) bills place of service 02,
    # or 10 with the patient at home; None is in person (or not said).
    modality: Modality | None = None

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone (ISO 8601 with Z or an offset)")
        return value

    @field_validator("end")
    @classmethod
    def _ends_after_it_starts(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("start")
        if value is not None and start is not None and value < start:
            raise ValueError("the encounter ends before it starts")
        return value


class IngestedItem(BaseModel):
    """One encounter's outcome: `created`, or `duplicate` (already here, nothing changed)."""

    id: str
    external_id: str
    queue: str
    status: str


class IngestResult(BaseModel):
    """The answer of both ingest endpoints."""

    work_items: list[IngestedItem]


# ---------------------------------------------------------------- views (plaintext, memory only)


class _View(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class AddressView(_View):
    """The patient's postal address (billing view only)."""

    line: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None


class PatientView(_View):
    """What coding needs of the patient: no address, phone or SSN."""

    mrn: str
    name: str
    birth_date: str | None = None
    sex: str | None = None


class BillingPatientView(PatientView):
    """The patient as a claim needs them: adds the address."""

    address: AddressView | None = None


class PayerView(_View):
    """The payer and the member id (billing view only)."""

    name: str | None = None
    member_id: str | None = None
    payer_id: str | None = None


class EncounterView(_View):
    """Encounter metadata (the routing fields, and a telehealth visit's modality)."""

    source: str
    external_id: str
    encounter_class: str = Field(serialization_alias="class")
    facility: str | None = None
    service_type: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    payer_class: str | None = None
    modality: str | None = None


class DocumentView(_View):
    """One decrypted note."""

    id: int
    title: str | None = None
    type: str | None = None
    date: datetime | None = None
    text: str


class HintView(_View):
    """A source code hint."""

    system: str | None = None
    code: str
    display: str | None = None


class HintsView(_View):
    """Conditions, procedures and claim lines from the source, for the coder."""

    conditions: list[HintView] = Field(default_factory=list)
    procedures: list[HintView] = Field(default_factory=list)
    claim_lines: list[HintView] = Field(default_factory=list)
    service_type_display: str | None = None


class RecordView(_View):
    """A decrypted record, as `open_record` returns it (never stored, never logged).

    `view="coding"`: patient {mrn, name, birth_date, sex}. `view="billing"`: the patient also
    carries `address`, and `payer` {name, member_id} is filled.
    """

    work_item_id: int
    encounter_id: int
    patient_id: int
    view: str
    patient: BillingPatientView | PatientView
    encounter: EncounterView
    documents: list[DocumentView]
    hints: HintsView
    payer: PayerView | None = None


class EmergencyAccessRequest(_In):
    """Break-glass: the reason, one of CHARTDESK_EMERGENCY_REASONS (never free text)."""

    reason: str = Field(min_length=1, max_length=200)


class RoutingRuleIn(_In):
    """A routing rule: empty fields match anything; the first matching rule wins."""

    position: int = Field(default=0, ge=0, le=100_000)
    facility: Name | None = None
    encounter_class: EncounterClass | None = None
    service_type: Code | None = None
    payer_class: Code | None = None
    queue: QueueName
    priority: int = Field(default=0, ge=-1000, le=1000)
    is_active: bool = True
    set_class: EncounterClass | None = None  # bill matching encounters as this class


class RoutingRuleView(_View):
    """A stored routing rule."""

    id: int
    position: int
    facility: str | None
    encounter_class: str | None
    service_type: str | None
    payer_class: str | None
    queue: str
    priority: int
    is_active: bool
    set_class: str | None = None


class RoutingRuleList(_View):
    """Every routing rule in order."""

    items: list[RoutingRuleView]
    next_cursor: str | None = None
