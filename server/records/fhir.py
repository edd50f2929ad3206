"""FHIR R4 bundles (as Synthea writes them) to `EncounterIn`: every problem, with its place.

Used: Patient; Practitioner; Encounter and its participants (the encounter's providers, by
NPI, from a Practitioner in the bundle or a conditional reference
`Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|NPI` as Synthea writes them); notes
from DocumentReference attachments and DiagnosticReport presentedForm (base64, linked to
their Encounter by reference; the same text twice is kept once); Condition, Procedure and
Claim as coding hints; Coverage (or the Claim's insurance) for the payer; the abstract's
prefill: Encounter.hospitalization as NUBC codes and, for an inpatient stay, the admission
hour (period.start), the attending (participant ATND, else PPRF) and operating physician
(SPRF), and the performed date of each ICD-10-PCS Procedure. Every other resource type is
skipped. Nothing here stores anything: the parser either returns every
encounter of the bundle or raises ValidationFailed listing every problem as
{"loc": ["entry", i, "resource", field...], "msg": ...}, and never echoes values.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from server.coding import nubc
from server.errors import ValidationFailed
from server.records.schemas import EncounterIn

BUNDLE_TYPES = ("transaction", "batch", "collection", "searchset", "message")
# v3 ActCode encounter classes. Professional fee billing is chosen by a routing rule.
CLASS_MAP = {
    "IMP": "inpatient",
    "ACUTE": "inpatient",
    "NONAC": "inpatient",
    "SS": "inpatient",
    "EMER": "emergency",
    "AMB": "outpatient",
    "OBSENC": "outpatient",
    "VR": "outpatient",
    "HH": "outpatient",
    "FLD": "outpatient",
    "PRENC": "outpatient",
}
DEFAULT_SOURCE = "urn:chartdesk:fhir-resource-id"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
_NPI_REF = f"Practitioner?identifier={NPI_SYSTEM}|"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR = re.compile(r"^\d{4}-\d{2}-\d{2}T(\d{2}):")
_PCS = re.compile(r"^[0-9A-HJ-NP-Za-hj-np-z]{7}$")


Loc = list[str | int]


@dataclass
class _Problems:
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, loc: Loc, msg: str) -> None:
        self.items.append({"loc": loc, "msg": msg})


def _entry_loc(index: int, *path: str | int) -> Loc:
    return ["entry", index, "resource", *path]


def _first_coding(concept: Any) -> dict[str, Any]:
    if isinstance(concept, dict):
        codings = concept.get("coding")
        if isinstance(codings, list) and codings and isinstance(codings[0], dict):
            return codings[0]
    return {}


def _concept_text(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    text = concept.get("text") or _first_coding(concept).get("display")
    return str(text) if text else None


def _hint(concept: Any) -> dict[str, Any] | None:
    coding = _first_coding(concept)
    if not coding.get("code"):
        return None
    return {
        "system": coding.get("system"),
        "code": str(coding["code"]),
        "display": coding.get("display") or _concept_text(concept),
    }


def _ref(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        return str(value["reference"])
    return None


def _person_name(names: Any) -> str | None:
    if not isinstance(names, list) or not names:
        return None
    chosen = next(
        (n for n in names if isinstance(n, dict) and n.get("use") == "official"), names[0]
    )
    if not isinstance(chosen, dict):
        return None
    if chosen.get("text"):
        return str(chosen["text"])
    parts = [str(g) for g in chosen.get("given") or []]
    if chosen.get("family"):
        parts.append(str(chosen["family"]))
    return " ".join(parts) or None


def _id_type(identifier: dict[str, Any]) -> str | None:
    code = _first_coding(identifier.get("type")).get("code")
    return str(code) if code else None


def _patient(index: int, res: dict[str, Any], problems: _Problems) -> dict[str, Any] | None:
    identifiers = [i for i in res.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
    mrn = next((i["value"] for i in identifiers if _id_type(i) == "MR"), None) or res.get("id")
    name = _person_name(res.get("name"))
    start = len(problems.items)
    if not mrn:
        problems.add(_entry_loc(index, "identifier"), "no medical record number (type MR) or id")
    if not name:
        problems.add(_entry_loc(index, "name"), "the patient has no name")
    birth = res.get("birthDate")
    if birth is not None and (not isinstance(birth, str) or len(birth) < 4):
        problems.add(_entry_loc(index, "birthDate"), "not a FHIR date")
    if len(problems.items) > start:
        return None
    ssn = next(
        (i["value"] for i in identifiers if _id_type(i) == "SS" or i.get("system") == SSN_SYSTEM),
        None,
    )
    others = [
        {"type": _id_type(i), "system": i.get("system"), "value": str(i["value"])}
        for i in identifiers
        if _id_type(i) not in ("MR", "SS") and i.get("system") != SSN_SYSTEM
    ]
    phone = next(
        (
            t.get("value")
            for t in res.get("telecom") or []
            if isinstance(t, dict) and t.get("system") == "phone"
        ),
        None,
    )
    address = None
    addresses = res.get("address")
    if isinstance(addresses, list) and addresses and isinstance(addresses[0], dict):
        a = addresses[0]
        address = {
            "line": [str(x) for x in a.get("line") or []],
            "city": a.get("city"),
            "state": a.get("state"),
            "postal_code": a.get("postalCode"),
            "country": a.get("country"),
        }
    return {
        "mrn": str(mrn),
        "name": name,
        "birth_date": birth[:10] if isinstance(birth, str) and len(birth) >= 10 else None,
        "sex": res.get("gender"),
        "ssn": ssn,
        "phone": phone,
        "address": address,
        "identifiers": others,
    }


def payer_class(payer_name: str | None) -> str | None:
    """The payer class used for routing, from the payer's name (Synthea's names)."""
    if not payer_name:
        return None
    lowered = payer_name.casefold()
    if lowered in ("no_insurance", "no insurance", "self pay", "self-pay"):
        return "self-pay"
    for known in ("medicare", "medicaid", "tricare"):
        if known in lowered:
            return known
    return "commercial"


def _decode(index: int, loc: Loc, data: Any, problems: _Problems) -> str | None:
    if not isinstance(data, str):
        problems.add(_entry_loc(index, *loc), "no base64 data")
        return None
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        problems.add(_entry_loc(index, *loc), "not valid base64-encoded UTF-8 text")
        return None


@dataclass
class _Enc:
    index: int
    resource: dict[str, Any]
    patient_ref: str
    documents: list[dict[str, Any]] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    procedures: list[dict[str, Any]] = field(default_factory=list)
    claim_lines: list[dict[str, Any]] = field(default_factory=list)
    payer: dict[str, Any] | None = None
    providers: list[dict[str, Any]] = field(default_factory=list)
    procedure_dates: dict[str, str] = field(default_factory=dict)  # ICD-10-PCS code -> date


def _resource_keys(entry: dict[str, Any], res: dict[str, Any]) -> list[str]:
    keys = []
    if isinstance(entry.get("fullUrl"), str):
        keys.append(entry["fullUrl"])
    if res.get("id"):
        keys.append(f"{res.get('resourceType')}/{res['id']}")
    return keys


def _add_note(enc: _Enc, note: dict[str, Any]) -> None:
    if any(d["text"] == note["text"] for d in enc.documents):
        return
    enc.documents.append(note)


@dataclass
class _Bundle:
    """What the passes over one bundle share: resources by reference, encounters, problems."""

    problems: _Problems
    resources: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    by_ref: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    patients: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    practitioners: dict[int, dict[str, Any]] = field(default_factory=dict)  # {npi, name}
    encounters: dict[int, _Enc] = field(default_factory=dict)
    coverages: dict[str, dict[str, Any]] = field(default_factory=dict)  # patient ref -> payer
    # Every Coverage of a patient (a patient changes payers over the years): patient ref ->
    # payers, for a Claim that names its payer only by display.
    all_coverages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def resolve(self, ref: str | None, kind: str) -> tuple[int, dict[str, Any]] | None:
        """The resource of this kind that `ref` names in the bundle, if any."""
        found = self.by_ref.get(ref) if ref else None
        if found is None or found[1].get("resourceType") != kind:
            return None
        return found

    def encounter_of(self, ref: str | None) -> _Enc | None:
        """The encounter `ref` names (None also for one with problems of its own, listed)."""
        found = self.resolve(ref, "Encounter")
        return self.encounters.get(found[0]) if found else None


def _on_patient(b: _Bundle, index: int, res: dict[str, Any]) -> None:
    b.patients[index] = _patient(index, res, b.problems)


def _is_npi(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 10 and value.isdigit()


def _on_practitioner(b: _Bundle, index: int, res: dict[str, Any]) -> None:
    """A Practitioner with an NPI identifier (others cannot be queried and are skipped)."""
    npi = next(
        (
            i.get("value")
            for i in res.get("identifier") or []
            if isinstance(i, dict) and i.get("system") == NPI_SYSTEM
        ),
        None,
    )
    if _is_npi(npi):
        name = _person_name(res.get("name")) or ""
        b.practitioners[index] = {"npi": npi, "name": name[:200]}


def _participant_type(participant: dict[str, Any]) -> str | None:
    types = participant.get("type")
    code = _first_coding(types[0]).get("code") if isinstance(types, list) and types else None
    return str(code)[:40] if code else None


def _providers(b: _Bundle, res: dict[str, Any]) -> list[dict[str, Any]]:
    """The encounter's practitioners with an NPI: in the bundle, or referenced by NPI."""
    found: list[dict[str, Any]] = []
    for participant in res.get("participant") or []:
        if not isinstance(participant, dict) or not isinstance(participant.get("individual"), dict):
            continue
        individual = participant["individual"]
        ref = _ref(individual)
        linked = b.resolve(ref, "Practitioner")
        provider: dict[str, Any] | None = None
        if linked is not None and linked[0] in b.practitioners:
            provider = dict(b.practitioners[linked[0]])
        elif ref is not None and ref.startswith(_NPI_REF) and _is_npi(ref[len(_NPI_REF) :]):
            display = individual.get("display")
            name = str(display)[:200] if isinstance(display, str) else ""
            provider = {"npi": ref[len(_NPI_REF) :], "name": name}
        if provider is not None and all(p["npi"] != provider["npi"] for p in found):
            provider["role"] = _participant_type(participant)
            found.append(provider)
    return found


def _on_encounter(b: _Bundle, index: int, res: dict[str, Any]) -> None:
    subject = _ref(res.get("subject"))
    if subject is None:
        b.problems.add(_entry_loc(index, "subject"), "the encounter has no subject (Patient)")
        return
    if b.resolve(subject, "Patient") is None:
        b.problems.add(
            _entry_loc(index, "subject", "reference"),
            "refers to a Patient that is not in the bundle",
        )
        return
    code = (res.get("class") or {}).get("code") if isinstance(res.get("class"), dict) else None
    if code not in CLASS_MAP:
        b.problems.add(
            _entry_loc(index, "class", "code"),
            f"encounter class must be one of {', '.join(sorted(CLASS_MAP))}",
        )
    b.encounters[index] = _Enc(
        index=index, resource=res, patient_ref=subject, providers=_providers(b, res)
    )


def _on_document_reference(b: _Bundle, index: int, res: dict[str, Any]) -> None:
    refs = [
        _ref(c) for c in ((res.get("context") or {}).get("encounter") or []) if isinstance(c, dict)
    ]
    enc = next((e for e in map(b.encounter_of, refs) if e is not None), None)
    if refs and all(b.resolve(r, "Encounter") is None for r in refs):
        b.problems.add(
            _entry_loc(index, "context", "encounter"),
            "refers to an Encounter that is not in the bundle",
        )
        return
    for n, content in enumerate(res.get("content") or []):
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if not isinstance(attachment, dict) or "data" not in attachment:
            continue  # a URL-only attachment: nothing to keep
        text = _decode(index, ["content", n, "attachment", "data"], attachment["data"], b.problems)
        if text and enc is not None:
            _add_note(
                enc,
                {
                    "title": _concept_text(res.get("type")) or res.get("description"),
                    "type": _first_coding(res.get("type")).get("code"),
                    "date": res.get("date"),
                    "text": text,
                },
            )


def _on_diagnostic_report(b: _Bundle, index: int, res: dict[str, Any]) -> None:
    if not res.get("presentedForm"):
        return
    ref = _ref(res.get("encounter"))
    enc = b.encounter_of(ref)
    if ref and b.resolve(ref, "Encounter") is None:
        b.problems.add(
            _entry_loc(index, "encounter"), "refers to an Encounter that is not in the bundle"
        )
        return
    for n, form in enumerate(res.get("presentedForm") or []):
        if not isinstance(form, dict) or "data" not in form:
            continue
        text = _decode(index, ["presentedForm", n, "data"], form["data"], b.problems)
        if text and enc is not None:
            _add_note(
                enc,
                {
                    "title": _concept_text(res.get("code")),
                    "type": _first_coding(res.get("code")).get("code"),
                    "date": res.get("effectiveDateTime") or res.get("issued"),
                    "text": text,
                },
            )


def _on_condition(b: _Bundle, index: int, res: dict[str, Any]) -> None:
    enc = b.encounter_of(_ref(res.get("encounter")))
    hint = _hint(res.get("code"))
    if enc is not None and hint is not None:
        enc.conditions.append(hint)


def _performed_on(res: dict[str, Any]) -> str | None:
    """Procedure.performed[x]'s date (YYYY-MM-DD): performedDateTime or the period's start."""
    when = res.get("performedDateTime")
    if not isinstance(when, str) and isinstance(res.get("performedPeriod"), dict):
        when = res["performedPeriod"].get("start")
    return when[:10] if isinstance(when, str) and _DATE.match(when[:10]) else None


def _on_procedure(b: _Bundle, index: int, res: dict[str, Any]) -> None:
    enc = b.encounter_of(_ref(res.get("encounter")))
    hint = _hint(res.get("code"))
    if enc is not None and hint is not None:
        enc.procedures.append(hint)
        performed = _performed_on(res)
        system = str(hint.get("system") or "").lower()
        pcs = "icd-10-pcs" in system or "coding/icd10" in system
        if pcs and performed and _PCS.match(hint["code"]):  # the first date of each code kept
            enc.procedure_dates.setdefault(hint["code"].upper(), performed)


def _on_coverage(b: _Bundle, index: int, res: dict[str, Any]) -> None:
    beneficiary = _ref(res.get("beneficiary"))
    payor = res.get("payor")
    first = payor[0] if isinstance(payor, list) and payor and isinstance(payor[0], dict) else {}
    name = first.get("display")
    # The payer id: the payor reference's identifier, or that Organization's in the bundle.
    ident = first.get("identifier") if isinstance(first.get("identifier"), dict) else None
    org = b.resolve(_ref(first), "Organization") if first else None
    if org is not None:
        name = name or org[1].get("name")
        ids = [i for i in org[1].get("identifier") or [] if isinstance(i, dict)]
        ident = ident or (ids[0] if ids else None)
    if beneficiary:
        b.all_coverages.setdefault(beneficiary, [])
        b.coverages[beneficiary] = {
            "name": name or _concept_text(res.get("type")),
            "member_id": res.get("subscriberId")
            or next(
                (i.get("value") for i in res.get("identifier") or [] if isinstance(i, dict)),
                None,
            ),
            "payer_id": str(ident["value"]) if ident and ident.get("value") else None,
        }
        b.all_coverages[beneficiary].append(b.coverages[beneficiary])


def _on_claim(b: _Bundle, index: int, res: dict[str, Any]) -> None:
    refs = [
        _ref(e)
        for item in res.get("item") or []
        if isinstance(item, dict)
        for e in item.get("encounter") or []
    ]
    enc = next((e for e in map(b.encounter_of, refs) if e is not None), None)
    if enc is None:
        return
    for item in res.get("item") or []:
        hint = _hint(item.get("productOrService")) if isinstance(item, dict) else None
        if hint is not None:
            enc.claim_lines.append(hint)
    for ins in res.get("insurance") or []:
        coverage = ins.get("coverage") if isinstance(ins, dict) else None
        if not isinstance(coverage, dict):
            continue
        linked = b.resolve(_ref(coverage), "Coverage")
        if linked is not None:
            beneficiary = _ref(linked[1].get("beneficiary"))
            if beneficiary in b.coverages:
                enc.payer = b.coverages[beneficiary]
                return
        if coverage.get("display"):
            named = str(coverage["display"]).casefold()
            same = [
                c
                for c in b.all_coverages.get(enc.patient_ref, [])
                if str(c.get("name") or "").casefold() == named
            ]
            enc.payer = same[-1] if same else {"name": coverage["display"], "member_id": None}
            return


_Handler = Callable[[_Bundle, int, dict[str, Any]], None]

# The passes over a bundle, in order, and the handler of each resource type in each: a pass
# may use what the passes before it found (encounters need patients and practitioners; notes,
# hints and coverages need encounters; a claim's payer needs every coverage). Other types are
# ignored.
PASSES: tuple[dict[str, _Handler], ...] = (
    {"Patient": _on_patient, "Practitioner": _on_practitioner},
    {"Encounter": _on_encounter},
    {
        "DocumentReference": _on_document_reference,
        "DiagnosticReport": _on_diagnostic_report,
        "Condition": _on_condition,
        "Procedure": _on_procedure,
        "Coverage": _on_coverage,
    },
    {"Claim": _on_claim},
)


# FHIR R4 admit-source and discharge-disposition codes (terminology.hl7.org) with one
# NUBC UB-04 equivalent (FL15 point of origin, FL17 discharge status); others left empty.
ADMIT_SOURCE_NUBC = {"emd": "7", "gp": "2", "hosp-trans": "4", "nursing": "5", "other": "9"}
DISCHARGE_NUBC = {
    "home": "01",
    "hosp": "02",
    "snf": "03",
    "aadvice": "07",
    "exp": "20",
    "rehab": "62",
    "long": "63",
    "psy": "65",
    "oth": "70",
    "other-hcf": "70",
}


def _nubc(concept: Any, mapped: dict[str, str], listed: dict[str, str]) -> str | None:
    """The NUBC code of a FHIR concept: a NUBC coding as sent, else the FHIR code mapped."""
    codings = concept.get("coding") if isinstance(concept, dict) else None
    for coding in codings if isinstance(codings, list) else []:
        if not isinstance(coding, dict):
            continue
        code, system = str(coding.get("code") or ""), str(coding.get("system") or "").lower()
        if "nubc" in system and code.upper() in listed:
            return code.upper()
        if code in mapped:
            return mapped[code]
    return None


def _role_npi(enc: _Enc, *roles: str) -> str | None:
    """The NPI of the encounter's first practitioner in the first of `roles` that has one."""
    for role in roles:
        for provider in enc.providers:
            if (provider.get("role") or "").upper() == role:
                return str(provider["npi"])
    return None


def _admission_hour(period: Any) -> int | None:
    """The hour of Encounter.period.start as the source wrote it (its local clock)."""
    start = period.get("start") if isinstance(period, dict) else None
    match = _HOUR.match(start) if isinstance(start, str) else None
    return int(match.group(1)) if match and int(match.group(1)) < 24 else None


def _admission(enc: _Enc) -> dict[str, Any] | None:
    """The abstract the encounter carries: Encounter.hospitalization's admitSource and
    dischargeDisposition as NUBC codes, the admission hour (period.start), the attending
    (participant ATND, else the primary performer PPRF) and operating physician (the
    secondary performer SPRF), and the dates of its ICD-10-PCS Procedures."""
    res = enc.resource
    hospitalization = res.get("hospitalization")
    stay: dict[str, Any] = hospitalization if isinstance(hospitalization, dict) else {}
    found: dict[str, Any] = {
        "admission_source": _nubc(
            stay.get("admitSource"), ADMIT_SOURCE_NUBC, nubc.ADMISSION_SOURCE
        ),
        "discharge_status": _nubc(
            stay.get("dischargeDisposition"), DISCHARGE_NUBC, nubc.DISCHARGE_STATUS
        ),
    }
    if CLASS_MAP.get(str((res.get("class") or {}).get("code"))) == "inpatient":
        found["admission_hour"] = _admission_hour(res.get("period"))
        found["attending_npi"] = _role_npi(enc, "ATND", "PPRF")
        found["operating_npi"] = _role_npi(enc, "SPRF")
        if enc.procedure_dates:
            found["procedure_dates"] = dict(enc.procedure_dates)
    return found if any(v is not None for v in found.values()) else None


VIRTUAL = "VR"  # v3 ActCode: virtual (telehealth)
HOME_CODES = {"ho", "PTRES"}  # location-physical-type "house", v3 RoleCode "patient's residence"


def _codes(concepts: Any) -> set[str]:
    """Every coding code of a CodeableConcept or a list of them."""
    out: set[str] = set()
    for concept in concepts if isinstance(concepts, list) else [concepts]:
        if isinstance(concept, dict):
            for coding in concept.get("coding") or []:
                if isinstance(coding, dict) and coding.get("code"):
                    out.add(str(coding["code"]))
    return out


def _modality(b: _Bundle, res: dict[str, Any]) -> str | None:
    """`telehealth` for a virtual encounter (class VR), `telehealth-home` when a location says
    the patient was at home (physicalType `ho` or type `PTRES`, on the encounter's location
    or the Location it references); None in person."""
    if str((res.get("class") or {}).get("code")) != VIRTUAL:
        return None
    for entry in res.get("location") or []:
        if not isinstance(entry, dict):
            continue
        codes = _codes(entry.get("physicalType"))
        ref = (entry.get("location") or {}).get("reference")
        found = b.resolve(ref, "Location") if isinstance(ref, str) else None
        if found is not None:
            codes |= _codes(found[1].get("physicalType")) | _codes(found[1].get("type"))
        if codes & HOME_CODES:
            return "telehealth-home"
    return "telehealth"


def _encounter_in(b: _Bundle, enc: _Enc) -> EncounterIn | None:
    """One encounter of the bundle in our form (None if it has problems, now listed)."""
    patient_entry = b.resolve(enc.patient_ref, "Patient")
    assert patient_entry is not None  # noqa: S101
    patient = b.patients.get(patient_entry[0])
    if patient is None:
        return None  # its problems are already listed
    payer = enc.payer or b.coverages.get(enc.patient_ref)
    res = enc.resource
    identifiers = [i for i in res.get("identifier") or [] if isinstance(i, dict)]
    ident = next((i for i in identifiers if i.get("use") == "official"), None) or (
        identifiers[0] if identifiers else None
    )
    if ident and ident.get("value"):
        source, external = ident.get("system") or DEFAULT_SOURCE, ident["value"]
    else:
        source, external = DEFAULT_SOURCE, res.get("id")
    if not external:
        b.problems.add(_entry_loc(enc.index, "identifier"), "the encounter has no identifier or id")
        return None
    period: dict[str, Any] = res["period"] if isinstance(res.get("period"), dict) else {}
    first_type = (res.get("type") or [None])[0] if isinstance(res.get("type"), list) else None
    service_coding = _first_coding(res.get("serviceType")) or _first_coding(first_type)
    service = service_coding.get("code")
    service_display = service_coding.get("display") or _concept_text(
        res.get("serviceType") or first_type
    )
    facility = (
        (res.get("serviceProvider") or {}).get("display")
        if isinstance(res.get("serviceProvider"), dict)
        else None
    )
    if not facility:
        locations = res.get("location")
        if isinstance(locations, list) and locations and isinstance(locations[0], dict):
            facility = (locations[0].get("location") or {}).get("display")
    code = str((res.get("class") or {}).get("code"))
    raw = {
        "source_system": source,
        "external_id": str(external),
        "class": CLASS_MAP.get(code, "outpatient"),
        "facility": facility,
        "service_type": service,
        "payer_class": payer_class(payer.get("name") if payer else None),
        "start": period.get("start"),
        "end": period.get("end"),
        "patient": patient,
        "payer": payer,
        "documents": enc.documents,
        "hints": {
            "conditions": enc.conditions,
            "procedures": enc.procedures,
            "claim_lines": enc.claim_lines,
            "service_type_display": str(service_display)[:300] if service_display else None,
        },
        "providers": enc.providers,
        "admission": _admission(enc),
        "modality": _modality(b, res),
    }
    try:
        return EncounterIn.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            b.problems.add(
                _entry_loc(enc.index, *[str(p) for p in error.get("loc", ())]),
                str(error.get("msg", "")),
            )
        return None


def parse_bundle(bundle: Any) -> list[EncounterIn]:
    """Every Encounter of a FHIR R4 bundle as `EncounterIn`, or ValidationFailed (all problems)."""
    b = _Bundle(problems=_Problems())
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise ValidationFailed(
            "Not a FHIR Bundle.", details=[{"loc": ["resourceType"], "msg": "must be 'Bundle'"}]
        )
    if bundle.get("type") not in BUNDLE_TYPES:
        b.problems.add(["type"], f"bundle type must be one of {', '.join(BUNDLE_TYPES)}")
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        raise ValidationFailed(
            "The bundle has no entries.", details=[{"loc": ["entry"], "msg": "must be a list"}]
        )
    for index, entry in enumerate(entries):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            b.problems.add(["entry", index, "resource"], "not a FHIR resource")
            continue
        b.resources.append((index, res))
        for key in _resource_keys(entry, res):
            b.by_ref[key] = (index, res)
    for handlers in PASSES:
        for index, res in b.resources:
            handler = handlers.get(res["resourceType"])
            if handler is not None:
                handler(b, index, res)
    out = [e for e in (_encounter_in(b, enc) for enc in b.encounters.values()) if e is not None]
    if b.problems.items:
        raise ValidationFailed(
            f"The bundle has {len(b.problems.items)} problem(s); nothing was stored.",
            details=b.problems.items,
        )
    return out
