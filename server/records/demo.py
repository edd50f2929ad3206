"""Sample charts for `chartdesk demo`: real Synthea bundles shipped inside the repository."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import col, func, select

from server.auth.principal import system_principal
from server.db import session_scope
from server.models import Document, Encounter, EncounterProvider
from server.records import importer

SAMPLES = Path(__file__).resolve().parent / "samples"
# The demo `provider` account's NPI (a valid check digit); every demo chart names this
# practitioner, so that any chart can be queried in the demo.
DEMO_PROVIDER_NPI = "1245319599"
DEMO_PROVIDER_NAME = "Dr. Demo Attending"
# Synthea's bundles name each Claim's payer but carry no Coverage with a member id or a
# payer id. The demo's EHR sends one Coverage per payer a patient's Claims name, with these
# clearinghouse payer ids (the national payers' public ids; the Blue Cross plan's and
# Medicaid's are the demo clearinghouse's) and a member id derived from the patient.
DEMO_PAYER_IDS = {
    "Aetna": "60054",
    "Humana": "61101",
    "UnitedHealthcare": "87726",
    "Blue Cross Blue Shield": "BCBSMA",
    "Medicaid": "SKMA0",
}


def with_coverage(bundle: dict[str, Any], *, self_pay_to: str | None = None) -> dict[str, Any]:
    """A copy of a Synthea bundle plus one Coverage per payer its Claims name (subscriber id
    and payer id), as a hospital EHR sends them. Self-pay (NO_INSURANCE) gets none, unless
    `self_pay_to` names the payer the patient has since been enrolled with."""
    out = copy.deepcopy(bundle)
    entries = [e for e in out.get("entry") or [] if isinstance(e, dict)]
    patient = next(
        (e for e in entries if (e.get("resource") or {}).get("resourceType") == "Patient"), None
    )
    if patient is None or not isinstance(patient.get("fullUrl"), str):
        return out
    names: set[str] = set()
    for e in entries:
        for ins in (e.get("resource") or {}).get("insurance") or []:
            coverage = ins.get("coverage") if isinstance(ins, dict) else None
            if not isinstance(coverage, dict) or not coverage.get("display"):
                continue
            if coverage["display"] == "NO_INSURANCE" and self_pay_to:
                coverage["display"] = self_pay_to
            names.add(str(coverage["display"]))
    for n, name in enumerate(sorted(n for n in names if n in DEMO_PAYER_IDS)):
        seed = f"{patient['fullUrl']}|{name}".encode()
        member = "M" + hashlib.sha256(seed).hexdigest()[:9].upper()
        out["entry"].append(
            {
                "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}",
                "resource": {
                    "resourceType": "Coverage",
                    "id": f"coverage-{n}",
                    "status": "active",
                    "subscriberId": member,
                    "beneficiary": {"reference": patient["fullUrl"]},
                    "payor": [{"display": name, "identifier": {"value": DEMO_PAYER_IDS[name]}}],
                },
                "request": {"method": "POST", "url": "Coverage"},
            }
        )
    return out


@dataclass
class Loaded:
    """What the demo has: encounters by class, notes, and where they came from."""

    created: int = 0
    files: list[str] = field(default_factory=list)
    by_class: dict[str, int] = field(default_factory=dict)
    with_notes: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        """One line for the terminal."""
        total = sum(self.by_class.values())
        classes = ", ".join(f"{n} {k}" for k, n in sorted(self.by_class.items()))
        source = f" from {', '.join(self.files)}" if self.files else ""
        new = f" ({self.created} new)" if self.created != total else ""
        return f"{total} sample encounters{new}: {classes}; {self.with_notes} with notes{source}"


def load_sample_encounters(samples: Path = SAMPLES) -> Loaded:
    """Load the shipped Synthea bundles (once: a second run finds them as duplicates)."""
    actor = system_principal("demo")
    summary = importer.Summary()
    files = importer.collect([samples])
    for unit in importer.units(files):
        if isinstance(unit.payload, dict) and unit.payload.get("resourceType") == "Bundle":
            # What the demo EHR adds: Coverage, and Medicaid for the self-pay patient (enrolled
            # since), so that the biller has claims to send; the sample whose address has no
            # ZIP code keeps its claim edit, as a real one would.
            unit.payload = with_coverage(unit.payload, self_pay_to="Medicaid")
        importer.ingest_unit(unit, actor=actor, summary=summary)
    _demo_provider_everywhere()
    loaded = Loaded(
        created=summary.created, files=[f.name for f in files], rejected=summary.rejected
    )
    with session_scope() as session:
        for klass, count in session.exec(
            select(Encounter.encounter_class, func.count()).group_by(col(Encounter.encounter_class))
        ).all():
            loaded.by_class[klass] = count
        loaded.with_notes = session.exec(
            select(func.count(func.distinct(Document.encounter_id)))
        ).one()
    return loaded


def _demo_provider_everywhere() -> None:
    """Name the demo provider on every sample chart (beside its own practitioners)."""
    with session_scope() as session:
        named = set(
            session.exec(
                select(EncounterProvider.encounter_id).where(
                    EncounterProvider.npi == DEMO_PROVIDER_NPI
                )
            ).all()
        )
        for encounter_id in session.exec(select(Encounter.id)).all():
            if encounter_id is not None and encounter_id not in named:
                session.add(
                    EncounterProvider(
                        encounter_id=encounter_id,
                        npi=DEMO_PROVIDER_NPI,
                        name=DEMO_PROVIDER_NAME,
                        role="ATND",
                    )
                )
