"""Factories: users, signed-in clients, tokens. Real services, real commits."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyotp
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from server.auth import service as auth_service
from server.auth.principal import Principal
from server.db import get_engine
from server.models import User, UserSession


@dataclass
class Account:
    """A user the test created, with the secrets needed to sign in."""

    username: str
    password: str
    totp_secret: str
    user_id: int


def make_user(
    username: str,
    *roles: str,
    queues: list[str] | None = None,
    password: str = "correct horse battery staple",  # noqa: S107 - test fixture
    npi: str | None = None,
) -> Account:
    """Create and commit a local user (a provider needs `npi`)."""
    with Session(get_engine(), expire_on_commit=False) as s:
        created = auth_service.create_user(
            s,
            username=username,
            roles=list(roles),
            password=password,
            queues=queues or [],
            npi=npi,
        )
        s.commit()
        assert created.user.id is not None
        assert created.user.totp_secret is not None
        return Account(username, password, created.user.totp_secret, created.user.id)


def fresh_totp(account: Account) -> str:
    """A code the server will still accept (it refuses a replayed time step)."""
    with Session(get_engine()) as s:
        user = s.get(User, account.user_id)
        assert user is not None
        last = user.totp_last_counter
        totp = pyotp.TOTP(account.totp_secret)
        now = int(time.time()) // totp.interval
        # Current step first: a step boundary passing mid-request still leaves it valid.
        for counter in (now, now + 1, now - 1):
            if last is None or counter > last:
                return totp.generate_otp(counter)
        # Every acceptable step is used: forget the last one (tests only).
        user.totp_last_counter = None
        s.add(user)
        s.commit()
        return totp.generate_otp(now)


def sign_in(client: TestClient, account: Account) -> dict[str, Any]:
    """Sign in through the JSON API; unsafe requests of `client` then carry the CSRF token."""
    resp = client.post(
        "/api/v1/session",
        json={
            "username": account.username,
            "password": account.password,
            "totp": fresh_totp(account),
        },
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    client.headers["X-CSRF-Token"] = body["csrf_token"]
    return body


def actor_of(account: Account, *roles: str) -> Principal:
    """A Principal for a factory account holding `roles`, for calling services directly."""
    return Principal(
        name=account.username, kind="user", roles=frozenset(roles), user_id=account.user_id
    )


def make_token(name: str, *scopes: str) -> str:
    """Create and commit a service token; returns its plaintext."""
    with Session(get_engine()) as s:
        _, plaintext = auth_service.create_token(s, name=name, scopes=list(scopes))
        s.commit()
    return plaintext


# Realistic (synthetic) chart content; tests that scan for plaintext search for these.
SAMPLE_NAMES = ["Marisol Quintero-Haas", "Dorian Feldkamp", "Ingrid Okonkwo", "Tobias Lindqvist"]
SAMPLE_NOTE = (
    "Patient reports three days of productive cough and low-grade fever after a camping trip."
)


def encounter_data(**overrides: Any) -> Any:
    """A valid `EncounterIn` with realistic synthetic data; keyword overrides replace fields."""
    import random
    import uuid
    from datetime import UTC, date, datetime, timedelta

    from server.records.schemas import EncounterIn

    tag = uuid.uuid4().hex[:10]
    start = datetime(2026, 10, 1, 9, 30, tzinfo=UTC) + timedelta(minutes=random.randint(0, 50000))  # noqa: S311
    data: dict[str, Any] = {
        "source_system": "urn:oid:2.16.840.1.113883.3.999.1",
        "external_id": f"ENC-{tag}",
        "class": "outpatient",
        "facility": "Riverside General Hospital",
        "service_type": "185349003",
        "payer_class": "commercial",
        "start": start,
        "end": start + timedelta(minutes=40),
        "patient": {
            "mrn": f"MRN{tag.upper()}",
            "name": random.choice(SAMPLE_NAMES),  # noqa: S311
            "birth_date": date(1961, 3, 14),
            "sex": "female",
            "ssn": f"999-{random.randint(10, 99)}-{random.randint(1000, 9999)}",  # noqa: S311
            "phone": "555-301-7719",
            "address": {
                "line": ["41 Orchard Lane"],
                "city": "Amherst",
                "state": "MA",
                "postal_code": "01002",
            },
        },
        "payer": {
            "name": "Blue Cross Blue Shield",
            "member_id": f"XBC{tag[:8].upper()}",
            "payer_id": "BCBSMA",
        },
        "documents": [
            {
                "title": "Progress note",
                "type": "11506-3",
                "date": start,
                "text": f"# Chief Complaint\n{SAMPLE_NOTE}\nLungs: scattered rhonchi.",
            }
        ],
        "hints": {
            "conditions": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "10509002",
                    "display": "Acute bronchitis (disorder)",
                }
            ],
            "procedures": [],
            "claim_lines": [],
        },
    }
    data.update(overrides)
    return EncounterIn.model_validate(data)


def make_encounter(queue: str = "default", priority: int = 0, **overrides: Any) -> int:
    """Ingest one realistic encounter through the real service; returns its work item id.

    The item lands in `queue` (created if needed) with `priority`, whatever the routing rules
    say; keyword overrides replace fields of the encounter (see `encounter_data`).
    """
    from sqlmodel import select

    from server.auth.principal import system_principal
    from server.models import Queue, WorkItem
    from server.queue import service as queue_service
    from server.records import service as records_service

    with Session(get_engine(), expire_on_commit=False) as s:
        created = records_service.create_encounter(
            s, actor=system_principal("test-factory"), data=encounter_data(**overrides)
        )
        target = s.exec(select(Queue).where(Queue.name == queue)).first()
        if target is None:
            target = queue_service.create_queue(s, name=queue)
        item = s.get(WorkItem, int(created.id))
        assert item is not None
        item.queue_id = target.id  # type: ignore[assignment]
        item.priority = priority
        s.add(item)
        s.commit()
        return int(created.id)


def session_row() -> UserSession:
    """The one signed-in session's row (tests with a single session)."""
    with Session(get_engine()) as s:
        return s.exec(select(UserSession)).one()


def shift_session(**delta: timedelta) -> None:
    """Move the one session's times back (e.g. `last_seen_at=timedelta(minutes=16)`: idle)."""
    with Session(get_engine()) as s:
        row = s.exec(select(UserSession)).one()
        for field, by in delta.items():
            setattr(row, field, getattr(row, field) - by)
        s.add(row)
        s.commit()


def update_user(username: str, **fields: Any) -> None:
    """Change a user's row directly (e.g. `is_active=False`, `in_training=True`)."""
    with Session(get_engine()) as s:
        user = s.exec(select(User).where(User.username == username)).one()
        for name, value in fields.items():
            setattr(user, name, value)
        s.add(user)
        s.commit()
