"""Property-based fuzzing of every operation in /openapi.json (schemathesis, in-process ASGI).

Each operation gets up to FUZZ_EXAMPLES generated requests, as a signed-in person holding
every role (session cookie + X-CSRF-Token) and as a service token holding every scope.
Passing means: no server error (5xx) and no response that breaks its documented schema.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlmodel import Session

from server.config import get_settings
from server.db import get_engine
from server.models import User
from tests.support.factories import fresh_totp, make_token, make_user

FUZZ_EXAMPLES = int(os.environ.get("CHARTDESK_FUZZ_EXAMPLES", "20"))
CHECKS = [not_a_server_error, response_schema_conformance]
# Calls that end the fuzzing session itself; sign-out has its own tests.
SESSION_ENDING = r"^(/api/v1/session|/logout|/auth/oidc/.*)$"
ALL_ROLES = ("coder", "supervisor", "biller", "compliance", "admin")

# PostgreSQL only: the API tests cover both backends; the fuzz needs to run on one of them.
pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.pg_only]


@dataclass
class Callers:
    """Headers that make a request come from the signed-in person or the token."""

    person: dict[str, str]
    token: dict[str, str]
    sign_in_again: Callable[[], None]


@pytest.fixture
def fuzz_app(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app with limits out of the way (fuzzing sends many requests from one address)."""
    for name, value in {
        "SIGNIN_RATE_PER_MINUTE": "100000",
        "SIGNIN_ACCOUNT_RATE_PER_MINUTE": "100000",
        "TOKEN_RATE_PER_MINUTE": "1000000",
        "TOKEN_IP_RATE_PER_MINUTE": "1000000",
    }.items():
        monkeypatch.setenv(f"CHARTDESK_{name}", value)
    get_settings.cache_clear()
    from server.coding import codesets
    from server.main import create_app

    codesets.icd10cm()  # built once per process; its first build must not count as a timeout
    return create_app()


@pytest.fixture
def api_schema(fuzz_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app).exclude(
        path_regex=SESSION_ENDING
    )


@pytest.fixture
def callers(fuzz_app: Any) -> Iterator[Callers]:
    for i in range(5):  # so that small generated user ids hit other accounts, not ours
        make_user(f"bystander{i}", "coder")
    account = make_user("fuzzer", *ALL_ROLES, queues=["default"])
    person: dict[str, str] = {}
    client = TestClient(fuzz_app, base_url="http://testserver")

    def sign_in_again() -> None:
        """Fuzzing may end its own session (e.g. an admin resets their own TOTP)."""
        if "Cookie" in person and client.get("/api/v1/me", headers=person).status_code == 200:
            client.cookies.clear()
            return
        with Session(get_engine()) as s:
            user = s.get(User, account.user_id)
            assert user is not None
            assert user.totp_secret is not None
            account.totp_secret = user.totp_secret
        r = client.post(
            "/api/v1/session",
            json={
                "username": account.username,
                "password": account.password,
                "totp": fresh_totp(account),
            },
        )
        assert r.status_code == 200, r.text
        name = get_settings().session_cookie_name
        person["Cookie"] = f"{name}={client.cookies.get(name)}"
        person["X-CSRF-Token"] = r.json()["csrf_token"]
        client.cookies.clear()

    with client:
        sign_in_again()
        token = {"Authorization": f"Bearer {make_token('fuzzer', 'ingest', 'billing', 'audit')}"}
        yield Callers(person=person, token=token, sign_in_again=sign_in_again)


FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
)


def fuzz(
    api_schema: Any, headers: dict[str, str], on_401: Callable[[], None] | None = None
) -> list[str]:
    """Run every operation's examples; the failures found, one line each.

    An earlier operation may end the fuzzer's own session (an admin disabling or resetting
    their own account): each operation starts signed in, so that a failure found there is
    its own and replays the same way.
    """
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert operations, "no operations in /openapi.json"
    for operation in operations:
        if on_401 is not None:
            on_401()

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            if response.status_code == 401 and on_401 is not None:
                on_401()

        try:
            run()
        except Exception as exc:  # a failed check, reported with the operation it came from
            causes = [exc, *getattr(exc, "exceptions", ())]
            first = [line for c in causes for line in str(c).strip().splitlines()[:6]]
            failures.append(f"{operation.method.upper()} {operation.path}: " + " | ".join(first))
    return failures


def test_fuzz_as_signed_in_person(api_schema: Any, callers: Callers) -> None:
    failures = fuzz(api_schema, callers.person, callers.sign_in_again)
    assert not failures, "\n".join(failures)


def test_fuzz_as_service_token(api_schema: Any, callers: Callers) -> None:
    failures = fuzz(api_schema, callers.token)
    assert not failures, "\n".join(failures)
