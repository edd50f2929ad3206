"""Automatic logoff on the server: only the person's own requests restart the idle clock."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from server.db import get_engine
from server.models import UserSession
from tests.support.factories import make_user, sign_in

BACKGROUND = {"X-Chartdesk-Background": "1"}


def _age_session(minutes: int) -> None:
    with Session(get_engine()) as s:
        row = s.exec(select(UserSession)).one()
        row.last_seen_at = row.last_seen_at - timedelta(minutes=minutes)
        s.add(row)
        s.commit()


def _last_seen():
    with Session(get_engine()) as s:
        return s.exec(select(UserSession.last_seen_at)).one()


def test_background_requests_neither_restart_nor_outlive_the_idle_clock(client):
    sign_in(client, make_user("boss", "supervisor"))
    _age_session(14)  # 14 of 15 idle minutes gone
    before = _last_seen()
    # The dashboard's refresh still works within the limit, but does not count as activity.
    assert client.get("/supervise/stats", headers=BACKGROUND).status_code == 200
    assert _last_seen() == before
    _age_session(2)  # now 16 minutes since the person last did anything
    r = client.get("/supervise/stats", headers=BACKGROUND, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/supervise/stats&expired=1"


def test_the_persons_own_request_restarts_it(client):
    sign_in(client, make_user("boss", "supervisor"))
    _age_session(14)
    before = _last_seen()
    assert client.get("/api/v1/me").status_code == 200
    assert _last_seen() > before
    _age_session(2)  # 2 minutes after that request: well within the limit
    assert client.get("/api/v1/me").status_code == 200
