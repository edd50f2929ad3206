"""Encounters as stored: metadata in clear, patient data and notes only as ciphertext."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class DataKey(SQLModel, table=True):
    """A per-encounter data key, stored only wrapped by a key-encryption key."""

    __tablename__ = "data_key"

    id: int | None = Field(default=None, primary_key=True)
    kek_id: str = Field(max_length=100, index=True)
    wrapped: bytes | None = Field(default=None, sa_type=LargeBinary)  # None once shredded
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    destroyed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Patient(SQLModel, table=True):
    """A patient known only by a blind index of the MRN.

    Demographics live encrypted with each encounter, under that encounter's data key.
    """

    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("source_system", "mrn_index"),)

    id: int | None = Field(default=None, primary_key=True)
    source_system: str = Field(max_length=200)
    mrn_index: str = Field(max_length=64, index=True)  # HMAC-SHA256 hex of the normalised MRN
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Encounter(SQLModel, table=True):
    """One visit to be coded. Routing fields in clear; everything identifying sealed."""

    __tablename__ = "encounter"
    __table_args__ = (UniqueConstraint("source_system", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source_system: str = Field(max_length=200)
    external_id: str = Field(max_length=200)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    data_key_id: int = Field(foreign_key="data_key.id")
    encounter_class: str = Field(max_length=40)  # inpatient, emergency, outpatient, professional
    facility: str | None = Field(default=None, max_length=200)
    service_type: str | None = Field(default=None, max_length=100)
    payer_class: str | None = Field(default=None, max_length=100)
    start_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    end_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # telehealth / telehealth-home (FHIR class VR): the claim's place of service 02 / 10
    modality: str | None = Field(default=None, max_length=20)
    # AES-256-GCM sealed JSON: patient demographics and identifiers, payer member id,
    # coding hints (conditions, procedures, claim lines).
    sealed_patient: bytes = Field(sa_type=LargeBinary)
    sealed_hints: bytes | None = Field(default=None, sa_type=LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Document(SQLModel, table=True):
    """A clinical note of an encounter, sealed (title, type and text)."""

    __tablename__ = "document"

    id: int | None = Field(default=None, primary_key=True)
    encounter_id: int = Field(foreign_key="encounter.id", index=True)
    position: int = 0
    doc_date: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sealed: bytes = Field(sa_type=LargeBinary)


class Hl7Message(SQLModel, table=True):
    """An HL7 v2 message already applied: (sending application, facility, MSH-10) answers a
    resend AA. Control ids are unique per sending system, so two feeds of one facility (ADT
    and transcription) numbering from 1 do not collide.

    Ids only: the sender's namespace and control id, the message type and the work item it
    touched. Written in the transaction that applied the message, so a message answered
    AE/AR leaves no row.
    """

    __tablename__ = "hl7_message"
    __table_args__ = (UniqueConstraint("sending_application", "sending_facility", "control_id"),)

    id: int | None = Field(default=None, primary_key=True)
    sending_application: str = Field(default="", max_length=200)
    sending_facility: str = Field(max_length=200)
    control_id: str = Field(max_length=200)
    message_type: str = Field(max_length=20)  # ADT^A01, MDM^T02, ...
    work_item_id: int | None = Field(default=None, foreign_key="work_item.id", index=True)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
