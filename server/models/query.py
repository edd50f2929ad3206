"""Physician queries: the encounter's providers, provider accounts, and the queries asked.

Provider names and NPIs are not patient data (they are published in the NPI registry) and
stay in clear for routing. A query's question, options, quoted clinical indicators, the
patient it is about and the provider's answer are patient data: each is one JSON value
sealed under the encounter's data key (records.service.seal_for_item / ItemKey.seal), never
in clear.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class EncounterProvider(SQLModel, table=True):
    """A practitioner who took part in an encounter (FHIR Encounter.participant)."""

    __tablename__ = "encounter_provider"
    __table_args__ = (UniqueConstraint("encounter_id", "npi"),)

    id: int | None = Field(default=None, primary_key=True)
    encounter_id: int = Field(foreign_key="encounter.id", index=True)
    npi: str = Field(max_length=10, index=True)
    name: str = Field(default="", max_length=200)
    role: str | None = Field(default=None, max_length=40)  # e.g. PPRF, ATND


class ProviderAccount(SQLModel, table=True):
    """A `provider` user and the NPI that links them to encounter practitioners."""

    __tablename__ = "provider_account"

    user_id: int = Field(foreign_key="app_user.id", primary_key=True, ondelete="CASCADE")
    npi: str = Field(max_length=10, unique=True, index=True)
    # Where query reminders go (a link only, never patient data); optional.
    email: str | None = Field(default=None, max_length=254)


class PhysicianQuery(SQLModel, table=True):
    """A coder's question to a provider about one work item's documentation.

    `sealed_content` holds {question, options, indicators: [{document, date, quote}],
    basis, patient: {name, mrn}}; `sealed_answer` holds {option, text}. Both under the
    encounter's data key, bound to this row.
    """

    __tablename__ = "physician_query"

    id: int | None = Field(default=None, primary_key=True)
    work_item_id: int = Field(foreign_key="work_item.id", index=True)
    coder_id: int = Field(foreign_key="app_user.id", index=True)
    provider_npi: str = Field(max_length=10, index=True)
    template: str = Field(max_length=20)  # multiple_choice | open_ended | yes_no
    status: str = Field(default="open", max_length=20, index=True)  # open | answered
    sealed_content: bytes = Field(sa_type=LargeBinary)
    sealed_answer: bytes | None = Field(default=None, sa_type=LargeBinary)
    answered_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
