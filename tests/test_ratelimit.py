"""Rate limits on sign-in (per IP and per account, shared through the database) and token use."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlmodel import Session, select

from server.auth.ratelimit import DbLimiter, LocalLimiter
from server.config import get_settings
from server.db import get_engine
from server.errors import RateLimited
from server.models import AuditEvent, UserSession
from tests.support.factories import fresh_totp, make_token, make_user


def _limit(monkeypatch: pytest.MonkeyPatch, **values: int) -> None:
    for key, value in values.items():
        monkeypatch.setenv(f"CHARTDESK_{key.upper()}", str(value))
    get_settings.cache_clear()


def _attempt(client, username: str, password: str = "wrong-password-here", totp: str = "000000"):  # noqa: S107
    return client.post(
        "/api/v1/session", json={"username": username, "password": password, "totp": totp}
    )


def _retry_after(response) -> int:
    value = int(response.headers["retry-after"])
    assert 1 <= value <= 60
    return value


def test_too_many_attempts_on_one_account_get_429_even_with_the_right_password(client, monkeypatch):
    _limit(monkeypatch, signin_account_rate_per_minute=3, signin_rate_per_minute=100)
    acct = make_user("ana", "coder")
    assert [_attempt(client, "ana").status_code for _ in range(3)] == [401, 401, 401]
    r = _attempt(client, "ANA", acct.password, fresh_totp(acct))
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    _retry_after(r)
    with Session(get_engine()) as s:
        assert s.exec(select(UserSession)).all() == []
        refused = s.exec(select(AuditEvent).where(AuditEvent.detail == "rate-limited")).all()
    assert [(e.action, e.outcome, e.actor) for e in refused] == [
        ("sign-in-failed", "denied", "ana")
    ]
    # Another account from the same address is not held back by ana's limit.
    bea = make_user("bea", "coder")
    assert _attempt(client, "bea", bea.password, fresh_totp(bea)).status_code == 200


def test_too_many_attempts_from_one_address_get_429_whatever_the_username(client, monkeypatch):
    _limit(monkeypatch, signin_account_rate_per_minute=100, signin_rate_per_minute=4)
    answers = [_attempt(client, f"guess{i}").status_code for i in range(5)]
    assert answers == [401, 401, 401, 401, 429]
    # The web form is limited the same way.
    page = client.post(
        "/login", data={"username": "x", "password": "y", "totp": "1"}, follow_redirects=False
    )
    assert page.status_code == 429
    assert "Too many attempts" in page.text


def test_the_sign_in_count_is_shared_with_other_processes(client, db_url, monkeypatch):
    """A second process counting attempts from the same address uses up the same budget."""
    _limit(monkeypatch, signin_account_rate_per_minute=100, signin_rate_per_minute=5)
    code = (
        "from server.auth import ratelimit\n"
        "for _ in range(5):\n"
        "    ratelimit.check_signin(ip='testclient', username=None)\n"
    )
    env = {**os.environ, "CHARTDESK_DATABASE_URL": db_url, "CHARTDESK_SIGNIN_RATE_PER_MINUTE": "5"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
    r = _attempt(client, "anyone")
    assert r.status_code == 429
    _retry_after(r)


def test_the_sso_callback_is_limited_per_address(client, monkeypatch):
    _limit(monkeypatch, signin_rate_per_minute=2)
    monkeypatch.setenv("CHARTDESK_OIDC_DISCOVERY_URL", "http://127.0.0.1:9/.well-known/x")
    monkeypatch.setenv("CHARTDESK_OIDC_CLIENT_ID", "chartdesk")
    get_settings.cache_clear()
    codes = [
        client.get(f"/auth/oidc/callback?state=s{i}&code=c", follow_redirects=False).status_code
        for i in range(3)
    ]
    assert codes == [401, 401, 429]


def test_a_window_closes_and_a_new_one_opens(db_url):
    limiter = DbLimiter(window=60)
    start = 1_800_000_000.0 - (1_800_000_000 % 60)
    assert [limiter.hit("k", limit=2, now=start + i) for i in range(2)] == [1, 2]
    with pytest.raises(RateLimited) as refused:
        limiter.hit("k", limit=2, now=start + 15)
    assert refused.value.headers["Retry-After"] == "45"
    assert limiter.hit("k", limit=2, now=start + 60) == 1
    assert limiter.hit("other", limit=2, now=start + 60) == 1


def test_token_use_is_limited_per_token_and_per_address(client, monkeypatch):
    _limit(monkeypatch, token_rate_per_minute=3, token_ip_rate_per_minute=5)
    first, second = make_token("engine-a", "ingest"), make_token("engine-b", "ingest")
    answers = [
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {first}"}).status_code
        for _ in range(4)
    ]
    # Tokens never see person routes (403), and each use counts; the 4th is over the limit.
    assert answers == [403, 403, 403, 429]
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {second}"})
    assert r.status_code == 403  # another token has its own budget...
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {second}"})
    assert r.status_code == 429  # ...but the address has used its 5
    assert r.json()["error"]["code"] == "rate_limited"
    _retry_after(r)
    # Guessing tokens counts too.
    r = client.get("/api/v1/me", headers={"Authorization": "Bearer cdt_guess"})
    assert r.status_code == 429


def test_local_limiter_counts_per_key_and_window():
    limiter = LocalLimiter(window=60)
    assert [limiter.hit("a", limit=1, now=120.0), limiter.hit("b", limit=1, now=121.0)] == [1, 1]
    with pytest.raises(RateLimited):
        limiter.hit("a", limit=1, now=179.0)
    assert limiter.hit("a", limit=1, now=180.0) == 1
