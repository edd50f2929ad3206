"""Factories: users, signed-in clients, tokens. Real services, real commits."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pyotp
from fastapi.testclient import TestClient
from sqlmodel import Session

from server.auth import service as auth_service
from server.db import get_engine
from server.models import User


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
) -> Account:
    """Create and commit a local user."""
    with Session(get_engine(), expire_on_commit=False) as s:
        created = auth_service.create_user(
            s, username=username, roles=list(roles), password=password, queues=queues or []
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


def make_token(name: str, *scopes: str) -> str:
    """Create and commit a service token; returns its plaintext."""
    with Session(get_engine()) as s:
        _, plaintext = auth_service.create_token(s, name=name, scopes=list(scopes))
        s.commit()
    return plaintext
