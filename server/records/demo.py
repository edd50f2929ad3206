"""Sample encounters for `chartdesk demo`: the shared Synthea fixtures, or generated ones."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlmodel import func, select

from server.auth.principal import system_principal
from server.config import PROJECT_ROOT
from server.db import session_scope
from server.models import Encounter, EncounterProvider
from server.records import importer
from server.records.schemas import EncounterIn

FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures" / "synthea"
GENERATED = 12
# The demo `provider` account's NPI (a valid check digit); every demo chart names this
# practitioner, so that any chart can be queried in the demo.
DEMO_PROVIDER_NPI = "1245319599"
DEMO_PROVIDER = {"npi": DEMO_PROVIDER_NPI, "name": "Dr. Demo Attending", "role": "ATND"}

_GIVEN = ["Avery", "Jordan", "Mina", "Tomas", "Priya", "Elena", "Marcus", "Noor"]
_FAMILY = ["Okafor", "Lindqvist", "Haddad", "Moreau", "Castillo", "Nakamura"]
_NOTES = [
    "Presents with two days of right ear pain and fever; tympanic membrane bulging.",
    "Follow-up of type 2 diabetes; A1c 7.9, adjusting metformin, diet counselling given.",
    "Fell from a ladder, pain in left wrist; X-ray shows a distal radius fracture.",
    "Annual wellness visit; blood pressure 128/82, vaccines up to date.",
]
_CLASSES = ["outpatient", "outpatient", "emergency", "inpatient"]


def generated(count: int = GENERATED, *, seed: int = 7) -> list[EncounterIn]:
    """Plausible synthetic encounters for when the Synthea fixtures are not there."""
    rng = random.Random(seed)  # noqa: S311 - made-up demo data, not secrets
    start0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
    out = []
    for n in range(count):
        start = start0 + timedelta(days=rng.randint(0, 40), hours=rng.randint(0, 9))
        klass = rng.choice(_CLASSES)
        end = start + (timedelta(days=3) if klass == "inpatient" else timedelta(minutes=45))
        out.append(
            EncounterIn.model_validate(
                {
                    "source_system": "urn:chartdesk:demo",
                    "external_id": f"DEMO-{n + 1:04d}",
                    "class": klass,
                    "facility": "Chartdesk Demo Hospital",
                    "service_type": "185349003",
                    "payer_class": rng.choice(["commercial", "medicare", "medicaid"]),
                    "start": start,
                    "end": end,
                    "patient": {
                        "mrn": f"D{100000 + n}",
                        "name": f"{rng.choice(_GIVEN)} {rng.choice(_FAMILY)}",
                        "birth_date": date(1940 + rng.randint(0, 60), rng.randint(1, 12), 15),
                        "sex": rng.choice(["female", "male"]),
                        "ssn": f"999-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
                    },
                    "payer": {"name": "Demo Health Plan", "member_id": f"DHP{n:06d}"},
                    "providers": [DEMO_PROVIDER],
                    "documents": [
                        {
                            "title": "Progress note",
                            "type": "11506-3",
                            "date": start,
                            "text": rng.choice(_NOTES),
                        }
                    ],
                }
            )
        )
    return out


def load_sample_encounters(fixtures: Path = FIXTURES) -> int:
    """Load the sample encounters once (skipped when any encounter exists); returns created."""
    with session_scope() as session:
        if session.exec(select(func.count()).select_from(Encounter)).one():
            return 0
    actor = system_principal("demo")
    summary = importer.Summary()
    if fixtures.is_dir() and importer.collect([fixtures]):
        for unit in importer.units([fixtures]):
            importer.ingest_unit(unit, actor=actor, summary=summary)
        _demo_provider_everywhere()
        return summary.created
    from server.records import service

    with session_scope() as session:
        items = service.ingest_encounters(session, actor=actor, encounters=generated())
    return len(items)


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
                        name=str(DEMO_PROVIDER["name"]),
                        role="ATND",
                    )
                )
