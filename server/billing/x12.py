"""Claims out of a coded encounter: X12 837P / 837I 005010, FHIR R4 Claim, CSV.

`ClaimData` is everything a claim needs, gathered by the billing service from the record
(through `open_record`, view "billing") and the code lines. The builders here are pure
functions of it and of the billing settings; they never read the database.
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from server.config import Settings
from server.csvsafe import SafeWriter

IMPL_837P = "005010X222A1"
IMPL_837I = "005010X223A2"
SEPARATORS = {"element": "*", "component": ":", "segment": "~", "repetition": "^"}


@dataclass
class Line:
    """A procedure or service line."""

    system: str  # CPT | HCPCS | PCS
    code: str
    modifiers: list[str]
    units: int
    dx_pointers: list[int]
    charge_cents: int
    revenue_code: str = ""  # NUBC FL42 (837I SV201), from the chargemaster or the PCS rule
    description: str = ""  # the chargemaster's (or the code set's) description


@dataclass(frozen=True)
class Physician:
    """A physician named on an institutional claim: NPI and name (public, not patient data)."""

    npi: str
    last: str
    first: str = ""


@dataclass
class ClaimData:
    """One claim: patient, payer, dates, diagnoses and lines (already validated)."""

    work_item_id: int
    inpatient: bool
    patient_last: str
    patient_first: str
    birth_date: str | None  # YYYY-MM-DD
    sex: str | None  # male | female | other | unknown
    address_line: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    payer_name: str | None
    member_id: str | None
    start: datetime | None
    end: datetime | None
    diagnoses: list[tuple[str, str | None]]  # (ICD-10-CM code with dot, POA)
    lines: list[Line] = field(default_factory=list)
    # The inpatient abstract (NUBC codes; None: not abstracted) and the MS-DRG billed.
    admission_type: str | None = None  # FL14
    admission_source: str | None = None  # FL15 point of origin
    discharge_status: str | None = None  # FL17
    admitting_diagnosis: str | None = None  # ICD-10-CM, with or without the dot
    drg: str | None = None  # the three-digit MS-DRG of the billed codes
    drg_version: str | None = None  # the MS-DRG grouper version ("43.0")
    admission_hour: int | None = None  # FL13, 0-23 (None: not known)
    admission_date: date | None = None  # the admission's date on the hour's (source's) clock
    attending: Physician | None = None  # from the abstract (None: the billing setting's)
    operating: Physician | None = None  # the operating physician (2310B NM1*72)
    procedure_dates: dict[str, date] = field(default_factory=dict)  # PCS code -> performed
    birth_weight_grams: int | None = None  # a newborn's (NUBC value code 54)
    place_of_service: str = "11"  # CMS place of service (837P CLM05-1), from the class
    payer_id: str | None = None  # the payer's id at the clearinghouse (2010BB NM109)
    # A corrected claim after a payer's denial: frequency 7 (replacement) and REF*F8.
    frequency_code: str = "1"  # CLM05-3: 1 original, 7 replacement of a prior claim
    original_claim_number: str | None = None  # the payer's claim control number (CLP07)
    # A hospital outpatient visit billed by the facility: an 837I with type of bill 013x
    # (`server.billing.kind`), lines by revenue code + HCPCS/CPT with their dates.
    outpatient_institutional: bool = False

    @property
    def institutional(self) -> bool:
        """Whether the claim goes out on an 837I (inpatient 011x or hospital outpatient 013x)."""
        return self.inpatient or self.outpatient_institutional

    @property
    def claim_type(self) -> str:
        """837I or 837P."""
        return "837I" if self.institutional else "837P"

    @property
    def claim_id(self) -> str:
        """The patient control number (CLM01): our work item id, no patient data."""
        return f"CD{self.work_item_id}"

    @property
    def total_cents(self) -> int:
        """Sum of the line charges: the same figure on every format."""
        return sum(line.charge_cents for line in self.lines)


# US states, DC and territories by name, for addresses sent with the full name.
STATES = {
    "ALABAMA": "AL", "ALASKA": "AK", "ARIZONA": "AZ", "ARKANSAS": "AR", "CALIFORNIA": "CA",
    "COLORADO": "CO", "CONNECTICUT": "CT", "DELAWARE": "DE", "DISTRICT OF COLUMBIA": "DC",
    "FLORIDA": "FL", "GEORGIA": "GA", "HAWAII": "HI", "IDAHO": "ID", "ILLINOIS": "IL",
    "INDIANA": "IN", "IOWA": "IA", "KANSAS": "KS", "KENTUCKY": "KY", "LOUISIANA": "LA",
    "MAINE": "ME", "MARYLAND": "MD", "MASSACHUSETTS": "MA", "MICHIGAN": "MI", "MINNESOTA": "MN",
    "MISSISSIPPI": "MS", "MISSOURI": "MO", "MONTANA": "MT", "NEBRASKA": "NE", "NEVADA": "NV",
    "NEW HAMPSHIRE": "NH", "NEW JERSEY": "NJ", "NEW MEXICO": "NM", "NEW YORK": "NY",
    "NORTH CAROLINA": "NC", "NORTH DAKOTA": "ND", "OHIO": "OH", "OKLAHOMA": "OK", "OREGON": "OR",
    "PENNSYLVANIA": "PA", "RHODE ISLAND": "RI", "SOUTH CAROLINA": "SC", "SOUTH DAKOTA": "SD",
    "TENNESSEE": "TN", "TEXAS": "TX", "UTAH": "UT", "VERMONT": "VT", "VIRGINIA": "VA",
    "WASHINGTON": "WA", "WEST VIRGINIA": "WV", "WISCONSIN": "WI", "WYOMING": "WY",
    "PUERTO RICO": "PR", "GUAM": "GU", "VIRGIN ISLANDS": "VI", "AMERICAN SAMOA": "AS",
    "NORTHERN MARIANA ISLANDS": "MP",
}  # fmt: skip


def state_code(value: str | None) -> str | None:
    """The USPS two-letter code of a state given by code or by name (None: not a state)."""
    text = re.sub(" +", " ", unicodedata.normalize("NFKD", value or "").upper()).strip()
    if text in STATES.values():
        return text
    return STATES.get(text)


def zip_code(value: str | None) -> str | None:
    """A ZIP or ZIP+4 as X12 digits (None: missing, malformed, or the unknown 00000)."""
    digits = re.sub(r"\D", "", value or "")
    if len(digits) not in (5, 9) or digits.startswith("00000"):
        return None
    return digits


@dataclass(frozen=True)
class ClaimProblem:
    """Why a claim cannot be built truthfully: the biller sees it as a claim edit."""

    loc: tuple[str, ...]
    code: str
    msg: str


def problems(claim: ClaimData) -> list[ClaimProblem]:
    """What keeps this claim from going out as it is: never a placeholder in the file."""
    found: list[ClaimProblem] = []

    def add(loc: tuple[str, ...], code: str, msg: str) -> None:
        found.append(ClaimProblem(loc, code, msg))

    if not _clean(claim.address_line) or not _clean(claim.city):
        add(
            ("claim", "patient", "address"),
            "claim-address",
            "The patient has no street address and city on record.",
        )
    if state_code(claim.state) is None:
        add(
            ("claim", "patient", "address", "state"),
            "claim-address",
            "The patient's state is missing or not a US state.",
        )
    if zip_code(claim.postal_code) is None:
        add(
            ("claim", "patient", "address", "postal_code"),
            "claim-address",
            "The patient's ZIP code is missing or unknown (00000).",
        )
    if not claim.birth_date:
        add(
            ("claim", "patient", "birth_date"),
            "claim-birth-date",
            "The patient's birth date is missing.",
        )
    if not _clean(claim.payer_name):
        add(("claim", "payer", "name"), "claim-payer", "The encounter has no payer (Coverage).")
    if not _clean(claim.payer_id, 80):
        add(
            ("claim", "payer", "payer_id"),
            "claim-payer-id",
            "The payer has no payer id (a Coverage payor identifier, or "
            "CHARTDESK_BILLING_PAYER_IDS).",
        )
    if not _clean(claim.member_id, 80):
        add(
            ("claim", "payer", "member_id"),
            "claim-member-id",
            "The Coverage has no subscriber/member id.",
        )
    if not claim.diagnoses:
        add(("claim", "diagnoses"), "claim-no-diagnosis", "The claim has no diagnosis.")
    if claim.total_cents <= 0:
        add(
            ("claim", "total"),
            "claim-zero-total",
            "The claim totals 0.00: no line is priced (chargemaster) or charged.",
        )
    if claim.institutional:
        for n, line in enumerate(claim.lines, start=1):
            if not re.fullmatch(r"\d{4}", line.revenue_code):
                add(
                    ("claim", "lines", str(n), "revenue_code"),
                    "claim-revenue-code",
                    f"Line {n} ({line.code}) has no revenue code: add it to the chargemaster.",
                )
            if not claim.inpatient and line.system not in ("CPT", "HCPCS"):
                add(
                    ("claim", "lines", str(n), "code"),
                    "claim-outpatient-hcpcs",
                    f"Line {n} ({line.system} {line.code}): a hospital outpatient claim bills "
                    "each line by HCPCS/CPT code; ICD-10-PCS is for inpatient stays.",
                )
    return found  # fmt: skip


class ClaimNotBuildable(ValueError):
    """A claim with problems was asked for as X12: nothing is written."""

    def __init__(self, found: list[ClaimProblem]) -> None:
        super().__init__("; ".join(p.msg for p in found))
        self.problems = found


def npi_ok(npi: str) -> bool:
    """Whether `npi` is 10 digits with a valid check digit (Luhn over 80840 + first 9)."""
    if not re.fullmatch(r"\d{10}", npi):
        return False
    total = 0
    for i, ch in enumerate(reversed("80840" + npi[:9])):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10 == int(npi[9])


# ---------------------------------------------------------------- X12


_X12_BAD = re.compile(r"[*:~^\r\n]")


_X12_CHARS = re.compile(r"[^A-Z0-9 !&'()+,\-./;?=%@\[\]_{}\\|<>#$\"]")


def _clean(value: str | None, limit: int = 60) -> str:
    """An element value in the X12 character set: upper case ASCII, no separators, trimmed.

    Accents are dropped (Peña -> PENA); anything else outside the set becomes a space.
    """
    text = unicodedata.normalize("NFKD", value or "").encode("ascii", "ignore").decode()
    text = _X12_CHARS.sub(" ", _X12_BAD.sub(" ", text.upper()))
    return re.sub(" +", " ", text).strip()[:limit]


def _money(cents: int) -> str:
    text = f"{cents / 100:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _date(value: datetime | None, fallback: datetime) -> str:
    return (value or fallback).astimezone(UTC).strftime("%Y%m%d")


def _sex(value: str | None) -> str:
    return {"male": "M", "m": "M", "female": "F", "f": "F"}.get((value or "").lower(), "U")


def _zip(value: str | None) -> str:
    return zip_code(value) or ""


def _state(value: str | None) -> str:
    return state_code(value) or ""


def _nodot(code: str) -> str:
    return code.replace(".", "").upper()


def _segments_header(
    claim: ClaimData, settings: Settings, *, impl: str, control: int, now: datetime
) -> list[list[str]]:
    return [
        ["ST", "837", "0001", impl],
        ["BHT", "0019", "00", claim.claim_id, now.strftime("%Y%m%d"), now.strftime("%H%M"), "CH"],
        [
            "NM1",
            "41",
            "2",
            _clean(settings.billing_submitter_name),
            "",
            "",
            "",
            "",
            "46",
            _clean(settings.billing_submitter_id, 80),
        ],
        [
            "PER",
            "IC",
            _clean(settings.billing_submitter_contact),
            "TE",
            re.sub(r"\D", "", settings.billing_submitter_phone),
        ],
        [
            "NM1",
            "40",
            "2",
            _clean(settings.billing_receiver_name),
            "",
            "",
            "",
            "",
            "46",
            _clean(settings.billing_receiver_id, 80),
        ],
        ["HL", "1", "", "20", "1"],
        *(
            [["PRV", "BI", "PXC", settings.billing_provider_taxonomy]]
            if claim.institutional
            else []
        ),
        [
            "NM1",
            "85",
            "2",
            _clean(settings.billing_provider_name),
            "",
            "",
            "",
            "",
            "XX",
            settings.billing_provider_npi,
        ],
        ["N3", _clean(settings.billing_provider_address, 55)],
        [
            "N4",
            _clean(settings.billing_provider_city, 30),
            _state(settings.billing_provider_state),
            _zip(settings.billing_provider_zip),
        ],
        ["REF", "EI", re.sub(r"\D", "", settings.billing_provider_tax_id)],
        ["HL", "2", "1", "22", "0"],
        ["SBR", "P", "18", "", "", "", "", "", "", "CI"],
        [
            "NM1",
            "IL",
            "1",
            _clean(claim.patient_last, 60),
            _clean(claim.patient_first, 35),
            "",
            "",
            "",
            "MI",
            _clean(claim.member_id, 80),
        ],
        ["N3", _clean(claim.address_line, 55)],
        ["N4", _clean(claim.city, 30), _state(claim.state), _zip(claim.postal_code)],
        ["DMG", "D8", (claim.birth_date or "").replace("-", ""), _sex(claim.sex)],
        [
            "NM1",
            "PR",
            "2",
            _clean(claim.payer_name),
            "",
            "",
            "",
            "",
            "PI",
            _clean(claim.payer_id, 80),
        ],
    ]


def _hi(qualifier_first: str, qualifier_rest: str, codes: list[str]) -> list[list[str]]:
    """HI segments, 12 composites each."""
    composites = [
        f"{qualifier_first if i == 0 else qualifier_rest}:{code}" for i, code in enumerate(codes)
    ]
    return [["HI", *composites[i : i + 12]] for i in range(0, len(composites), 12)]


def _claim_837p(claim: ClaimData, now: datetime, settings: Settings) -> list[list[str]]:
    start = _date(claim.start, now)
    last, _, first = settings.billing_attending_name.partition(",")
    segs = [
        [
            "CLM",
            claim.claim_id,
            _money(claim.total_cents),
            "",
            "",
            f"{claim.place_of_service}:B:1",
            "Y",
            "A",
            "Y",
            "Y",
        ],
        *_hi("ABK", "ABF", [_nodot(c) for c, _ in claim.diagnoses]),
        # 2310B rendering provider: the billing provider is an organisation.
        [
            "NM1",
            "82",
            "1",
            _clean(last, 60),
            _clean(first, 35),
            "",
            "",
            "",
            "XX",
            settings.billing_attending_npi,
        ],
    ]
    for n, line in enumerate(claim.lines, start=1):
        qualifier = "HC"
        proc = ":".join([qualifier, line.code, *line.modifiers])
        pointers = ":".join(str(p) for p in line.dx_pointers[:4])
        segs += [
            ["LX", str(n)],
            ["SV1", proc, _money(line.charge_cents), "UN", str(line.units), "", "", pointers],
            ["DTP", "472", "D8", start],
        ]
    return segs


def _claim_837i(claim: ClaimData, now: datetime, settings: Settings) -> list[list[str]]:
    """Loop 2300 and 2400 of an 837I: an inpatient stay (type of bill 011x: admission date,
    admitting diagnosis, DRG, ICD-10-PCS procedures) or a hospital outpatient visit (013x:
    none of those; each line its revenue code, HCPCS/CPT, units, charge and date)."""
    start = claim.start or now
    end = claim.end or start
    inpatient = claim.inpatient
    dx = [f"{_nodot(code)}:::::::{(poa or 'U').upper()}" for code, poa in claim.diagnoses]
    if not inpatient:  # POA indicators are reported on inpatient claims only
        dx = [_nodot(code) for code, _poa in claim.diagnoses]
    bill_type = "11" if inpatient else "13"  # facility type + classification (CLM05-1, -2)
    segs = [
        [
            "CLM",
            claim.claim_id,
            _money(claim.total_cents),
            "",
            "",
            f"{bill_type}:A:1",
            "",
            "A",
            "Y",
            "Y",
        ],
        ["DTP", "434", "RD8", f"{_date(start, now)}-{_date(end, now)}"],
    ]
    if inpatient:  # the admission date (D8), with the hour when the abstract knows it (DT)
        # Date and hour on one clock: the source's (its date beside its hour), not UTC's date.
        admitted = (
            claim.admission_date.strftime("%Y%m%d") if claim.admission_date else _date(start, now)
        )
        segs.append(
            ["DTP", "435", "D8", admitted]
            if claim.admission_hour is None
            else ["DTP", "435", "DT", f"{admitted}{claim.admission_hour:02d}00"]
        )
    # Institutional claim codes (2300 CL1): admission type (priority of the visit), point
    # of origin, discharge status from the abstract. Inpatient: 9 ("information not
    # available") where not abstracted; outpatient: the point of origin only when abstracted.
    source = claim.admission_source or ("9" if inpatient else "")
    segs.append(["CL1", claim.admission_type or "9", source, claim.discharge_status or "01"])
    segs.append(["HI", f"ABK:{dx[0]}"])
    # The 837I's HI order: principal, admitting diagnosis, DRG, other diagnoses, procedures.
    if inpatient and claim.admitting_diagnosis:
        segs.append(["HI", f"ABJ:{_nodot(claim.admitting_diagnosis)}"])
    if inpatient and claim.drg:
        segs.append(["HI", f"DR:{claim.drg}"])
    if len(dx) > 1:
        segs += _hi("ABF", "ABF", dx[1:])
    # Principal procedure (BBR, alone in its HI), then the others (BBQ), each with the date
    # the abstract gives it (else the admission date). Inpatient claims only.
    pcs = [
        f"{line.code}:D8:{_procedure_date(claim, line.code, start, now)}"
        for line in claim.lines
        if line.system == "PCS" and inpatient
    ]
    if pcs:
        segs.append(["HI", f"BBR:{pcs[0]}"])
        segs += _hi("BBQ", "BBQ", pcs[1:])
    if inpatient and claim.birth_weight_grams is not None:  # value code 54: birth weight (g)
        segs.append(["HI", f"BE:54:::{claim.birth_weight_grams}"])
    last, _, first = settings.billing_attending_name.partition(",")
    attending = claim.attending or Physician(settings.billing_attending_npi, last, first)
    segs.append(_nm1_physician("71", attending))  # 2310A attending provider
    if claim.operating is not None:
        segs.append(_nm1_physician("72", claim.operating))  # 2310B operating physician
    # Every line is a service line under its revenue code (PCS lines without a HCPCS code):
    # the SV203 charges add up to CLM02. Outpatient lines carry their date (DTP*472).
    service_date = _date(start, now)
    for n, line in enumerate(claim.lines, start=1):
        hcpcs = line.code if line.system in ("CPT", "HCPCS") else ""
        proc = ":".join(["HC", hcpcs, *line.modifiers]) if hcpcs else ""
        segs += [
            ["LX", str(n)],
            [
                "SV2",
                line.revenue_code,
                proc,
                _money(line.charge_cents),
                "DA" if line.system == "REV" else "UN",  # room and board: days
                str(line.units),
            ],
        ]
        if not inpatient:
            segs.append(["DTP", "472", "D8", service_date])
    return segs


def _procedure_date(claim: ClaimData, code: str, start: datetime, now: datetime) -> str:
    performed = claim.procedure_dates.get(code.upper())
    return performed.strftime("%Y%m%d") if performed else _date(start, now)


def _nm1_physician(qualifier: str, physician: Physician) -> list[str]:
    return [
        "NM1",
        qualifier,
        "1",
        _clean(physician.last, 60) or "UNKNOWN",
        _clean(physician.first, 35),
        "",
        "",
        "",
        "XX",
        physician.npi,
    ]


def _as_replacement(claim: ClaimData, segs: list[list[str]]) -> list[list[str]]:
    """Loop 2300 of a corrected claim: CLM05-3 (claim frequency) = 7 and REF*F8 with the
    payer's claim control number, placed before the first HI as the guides order them."""
    if claim.frequency_code == "1" or not claim.original_claim_number:
        return segs
    out = [list(s) for s in segs]
    clm = next(s for s in out if s[0] == "CLM")
    place, qualifier, _ = clm[5].split(":")
    clm[5] = f"{place}:{qualifier}:{claim.frequency_code}"
    first_hi = next(i for i, s in enumerate(out) if s[0] == "HI")
    out.insert(first_hi, ["REF", "F8", _clean(claim.original_claim_number, 50)])
    return out


def _transaction(
    claim: ClaimData, settings: Settings, *, st_control: int, now: datetime
) -> list[list[str]]:
    """One 837 transaction set (ST..SE) for one claim; ClaimNotBuildable if it has problems."""
    found = problems(claim)
    if found:
        raise ClaimNotBuildable(found)
    impl = IMPL_837I if claim.institutional else IMPL_837P
    st = f"{st_control:04d}"
    body = _segments_header(claim, settings, impl=impl, control=st_control, now=now)
    body[0] = ["ST", "837", st, impl]
    body += _as_replacement(
        claim,
        _claim_837i(claim, now, settings)
        if claim.institutional
        else _claim_837p(claim, now, settings),
    )
    body.append(["SE", str(len(body) + 1), st])
    return body


@dataclass(frozen=True)
class Controls:
    """The control numbers of one interchange: ISA13, the first GS06 and the first ST02
    (each group and transaction set after the first takes the next number)."""

    interchange: int
    group: int
    transaction: int


def build_interchange(
    claims: list[ClaimData],
    settings: Settings,
    *,
    controls: Controls,
    now: datetime | None = None,
) -> str:
    """Claims as one X12 interchange: one functional group per implementation guide (837P,
    837I), one transaction set per claim, each with its own patient control number."""
    if not claims:
        raise ValueError("an interchange needs at least one claim")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    sender = _clean(settings.billing_submitter_id, 15)
    receiver = _clean(settings.billing_receiver_id, 15)
    ctrl = f"{controls.interchange % 1_000_000_000:09d}"
    isa = [
        "ISA",
        "00",
        " " * 10,
        "00",
        " " * 10,
        "ZZ",
        sender.ljust(15),
        "ZZ",
        receiver.ljust(15),
        now.strftime("%y%m%d"),
        now.strftime("%H%M"),
        SEPARATORS["repetition"],
        "00501",
        ctrl,
        "0",
        settings.billing_usage,
        SEPARATORS["component"],
    ]
    segments = [isa]
    group, st = controls.group, controls.transaction
    groups = 0
    for impl in (IMPL_837P, IMPL_837I):
        mine = [c for c in claims if (IMPL_837I if c.institutional else IMPL_837P) == impl]
        if not mine:
            continue
        gs_ctrl = str(group % 1_000_000_000 or 1)
        segments.append(
            [
                "GS",
                "HC",
                sender,
                receiver,
                now.strftime("%Y%m%d"),
                now.strftime("%H%M"),
                gs_ctrl,
                "X",
                impl,
            ]
        )
        for claim in mine:
            segments += _transaction(claim, settings, st_control=st % 1_000_000_000 or 1, now=now)
            st += 1
        segments.append(["GE", str(len(mine)), gs_ctrl])
        group += 1
        groups += 1
    segments.append(["IEA", str(groups), ctrl])
    return "".join(_trim(s) + SEPARATORS["segment"] + "\n" for s in segments)


def build_837(
    claim: ClaimData, settings: Settings, *, control: int = 1, now: datetime | None = None
) -> str:
    """The claim as one X12 interchange: 837I for inpatient stays and hospital outpatient
    visits, 837P otherwise."""
    return build_interchange([claim], settings, controls=Controls(control, control, 1), now=now)


def _trim(segment: list[str]) -> str:
    """Join elements, dropping trailing empty ones (X12 forbids trailing separators)."""
    parts = list(segment)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return SEPARATORS["element"].join(parts)


# ---------------------------------------------------------------- FHIR and CSV


def build_fhir(claim: ClaimData, settings: Settings) -> dict[str, Any]:
    """The claim as a FHIR R4 Claim resource (patient carried as a contained resource)."""
    created = datetime.now(UTC).isoformat(timespec="seconds")
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "patient",
        "name": [{"family": claim.patient_last, "given": [claim.patient_first]}],
        "gender": (claim.sex or "unknown").lower(),
    }
    if claim.birth_date:
        patient["birthDate"] = claim.birth_date
    if claim.address_line or claim.city:
        patient["address"] = [
            {
                "line": [claim.address_line] if claim.address_line else [],
                "city": claim.city,
                "state": claim.state,
                "postalCode": claim.postal_code,
            }
        ]
    coverage = {
        "resourceType": "Coverage",
        "id": "coverage",
        "status": "active",
        "subscriberId": claim.member_id,
        "beneficiary": {"reference": "#patient"},
        "payor": [
            {
                "display": claim.payer_name,
                **({"identifier": {"value": claim.payer_id}} if claim.payer_id else {}),
            }
        ],
    }
    diagnoses = [
        {
            "sequence": n,
            "diagnosisCodeableConcept": {
                "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]
            },
            **({"onAdmission": {"coding": [{"code": poa}]}} if claim.inpatient and poa else {}),
        }
        for n, (code, poa) in enumerate(claim.diagnoses, start=1)
    ]
    systems = {
        "CPT": "http://www.ama-assn.org/go/cpt",
        "HCPCS": "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "PCS": "http://www.cms.gov/Medicare/Coding/ICD10",
        "REV": "https://www.nubc.org/CodeSystem/RevenueCodes",  # room and board per day
    }
    procedures = [
        {
            "sequence": n,
            "procedureCodeableConcept": {"coding": [{"system": systems["PCS"], "code": line.code}]},
        }
        for n, line in enumerate((x for x in claim.lines if x.system == "PCS"), start=1)
    ]
    items = []
    pcs_seq = 0
    for n, line in enumerate(claim.lines, start=1):
        item: dict[str, Any] = {
            "sequence": n,
            "diagnosisSequence": line.dx_pointers or [1],
            "productOrService": {
                "coding": [{"system": systems[line.system], "code": line.code}],
                **({"text": line.description} if line.description else {}),
            },
            "modifier": [{"coding": [{"code": m}]} for m in line.modifiers],
            "quantity": {"value": line.units},
            "net": {"value": line.charge_cents / 100, "currency": "USD"},
        }
        if line.revenue_code:
            item["revenue"] = {
                "coding": [
                    {
                        "system": "https://www.nubc.org/CodeSystem/RevenueCodes",
                        "code": line.revenue_code,
                    }
                ]
            }
        if line.system == "PCS":
            pcs_seq += 1
            item["procedureSequence"] = [pcs_seq]
        if not claim.institutional:
            item["locationCodeableConcept"] = {
                "coding": [
                    {
                        "system": "https://www.cms.gov/Medicare/Coding/place-of-service-codes/"
                        "Place_of_Service_Code_Set",
                        "code": claim.place_of_service,
                    }
                ]
            }
        items.append(item)
    resource: dict[str, Any] = {
        "resourceType": "Claim",
        "id": claim.claim_id,
        "contained": [patient, coverage],
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "institutional" if claim.institutional else "professional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": "#patient"},
        "created": created,
        "provider": {
            "identifier": {
                "system": "http://hl7.org/fhir/sid/us-npi",
                "value": settings.billing_provider_npi,
            },
            "display": settings.billing_provider_name,
        },
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "#coverage"}}],
        "diagnosis": diagnoses,
        "item": items,
        "total": {"value": claim.total_cents / 100, "currency": "USD"},
    }
    if claim.start:
        resource["billablePeriod"] = {
            "start": claim.start.isoformat(),
            **({"end": claim.end.isoformat()} if claim.end else {}),
        }
    if procedures:
        resource["procedure"] = procedures
    if claim.inpatient:
        _fhir_inpatient(claim, resource, settings)
    return resource


MS_DRG_SYSTEM = (
    "https://www.cms.gov/Medicare/Medicare-Fee-for-Service-Payment/AcuteInpatientPPS/"
    "MS-DRG-Classifications-and-Software"
)
_INFO_CATEGORY = "http://terminology.hl7.org/CodeSystem/claiminformationcategory"
_NUBC = "https://www.nubc.org/CodeSystem/"
_CARE_TEAM_ROLE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimCareTeamRole"


def _info(sequence: int, category: str, **rest: Any) -> dict[str, Any]:
    return {
        "sequence": sequence,
        "category": {"coding": [{"system": _INFO_CATEGORY, "code": category}]},
        **rest,
    }


def _nubc_code(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": _NUBC + system, "code": code}]}


def _fhir_inpatient(claim: ClaimData, resource: dict[str, Any], settings: Settings) -> None:
    """The abstract and the MS-DRG on an institutional Claim: the DRG as the principal
    diagnosis's packageCode, the admitting diagnosis, procedure dates, the attending and
    operating physicians (careTeam) and the admission (supportingInfo)."""
    diagnoses: list[dict[str, Any]] = resource["diagnosis"]
    if claim.drg and diagnoses:
        diagnoses[0]["packageCode"] = {
            "coding": [
                {
                    "system": MS_DRG_SYSTEM,
                    **({"version": claim.drg_version} if claim.drg_version else {}),
                    "code": claim.drg,
                }
            ]
        }
    if claim.admitting_diagnosis:
        diagnoses.append(
            {
                "sequence": len(diagnoses) + 1,
                "diagnosisCodeableConcept": {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/sid/icd-10-cm",
                            "code": claim.admitting_diagnosis,
                        }
                    ]
                },
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/ex-diagnosistype",
                                "code": "admitting",
                            }
                        ]
                    }
                ],
            }
        )
    for procedure in resource.get("procedure", []):
        code = procedure["procedureCodeableConcept"]["coding"][0]["code"]
        performed = claim.procedure_dates.get(str(code).upper())
        if performed is not None:
            procedure["date"] = performed.isoformat()
    team = [
        (role, physician)
        for role, physician in (("attending", claim.attending), ("operating", claim.operating))
        if physician is not None
    ]
    if team:
        resource["careTeam"] = [
            {
                "sequence": n,
                "provider": {
                    "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": p.npi},
                    **({"display": f"{p.first} {p.last}".strip()} if p.last else {}),
                },
                "role": {"coding": [{"system": _CARE_TEAM_ROLE, "code": role}]},
            }
            for n, (role, p) in enumerate(team, start=1)
        ]
    info: list[dict[str, Any]] = []
    if claim.start is not None:
        start = claim.start
        if claim.admission_hour is not None:
            # The abstract's hour is on the hospital's clock, beside the admission's own date
            # (the source's, as DTP*435 gives them): that local moment, said in UTC. The stored
            # start is UTC, so its date is a day late for an evening admission west of UTC.
            zone = ZoneInfo(settings.audit_timezone)
            day = claim.admission_date or start.astimezone(zone).date()
            start = datetime.combine(day, time(claim.admission_hour), tzinfo=zone)
        period = {"start": start.astimezone(UTC).isoformat()}
        if claim.end is not None:
            period["end"] = claim.end.astimezone(UTC).isoformat()
        info.append(_info(len(info) + 1, "hospitalized", timingPeriod=period))
    if claim.admission_type:
        code = _nubc_code("PriorityTypeOfAdmitOrVisit", claim.admission_type)
        info.append(_info(len(info) + 1, "info", code=code))
    if claim.admission_source:
        info.append(
            _info(len(info) + 1, "info", code=_nubc_code("PointOfOrigin", claim.admission_source))
        )
    if claim.discharge_status:
        code = _nubc_code("PatDischargeStatus", claim.discharge_status)
        info.append(_info(len(info) + 1, "discharge", code=code))
    if claim.birth_weight_grams is not None:
        info.append(
            _info(
                len(info) + 1,
                "info",
                code=_nubc_code("ValueCodes", "54"),
                valueQuantity={
                    "value": claim.birth_weight_grams,
                    "unit": "g",
                    "system": "http://unitsofmeasure.org",
                    "code": "g",
                },
            )
        )
    if info:
        resource["supportingInfo"] = info


CSV_COLUMNS = [
    "claim_id",
    "claim_type",
    "line",
    "kind",
    "system",
    "code",
    "poa",
    "modifiers",
    "units",
    "dx_pointers",
    "charge",
    "patient_last",
    "patient_first",
    "birth_date",
    "sex",
    "payer",
    "member_id",
    "service_start",
    "service_end",
    "provider_npi",
    "revenue_code",
    "description",
    "place_of_service",
    "claim_total",
]


def build_csv(claim: ClaimData, settings: Settings) -> str:
    """The claim as CSV: one row per diagnosis and per line, claim fields repeated."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(CSV_COLUMNS)
    common = [
        claim.patient_last,
        claim.patient_first,
        claim.birth_date or "",
        claim.sex or "",
        claim.payer_name,
        claim.member_id,
        claim.start.isoformat() if claim.start else "",
        claim.end.isoformat() if claim.end else "",
        settings.billing_provider_npi,
    ]
    total = f"{claim.total_cents / 100:.2f}"
    kind = claim.claim_type
    for n, (code, poa) in enumerate(claim.diagnoses, start=1):
        writer.writerow(
            [
                claim.claim_id,
                kind,
                n,
                "diagnosis",
                "ICD10CM",
                code,
                poa or "",
                "",
                "",
                "",
                "",
                *common,
                "",
                "",
                "" if claim.institutional else claim.place_of_service,
                total,
            ]
        )
    for n, line in enumerate(claim.lines, start=1):
        writer.writerow(
            [
                claim.claim_id,
                kind,
                n,
                "procedure",
                line.system,
                line.code,
                "",
                " ".join(line.modifiers),
                line.units,
                " ".join(str(p) for p in line.dx_pointers),
                f"{line.charge_cents / 100:.2f}",
                *common,
                line.revenue_code,
                line.description,
                "" if claim.institutional else claim.place_of_service,
                total,
            ]
        )
    return out.getvalue()


def dumps_fhir(resource: dict[str, Any]) -> str:
    """JSON text of a FHIR resource."""
    return json.dumps(resource, indent=2)
