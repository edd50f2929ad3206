"""Sample charts for `chartdesk demo`: real Synthea bundles shipped inside the repository."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
