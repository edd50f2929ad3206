"""Next checks the caller's session inside the claim (PostgreSQL, issue 23) and still answers
every refusal as the ordinary access rule does: same status, same code, same audit row,
nothing claimed. These run on both backends: SQLite is the ordinary path, the reference."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from server.db import get_engine
from server.models import AuditEvent, Status, UserSession, WorkItem
from server.queue import router as queue_router
from tests.support.factories import (
    make_token,
    make_user,
    session_row,
    shift_session,
    sign_in,
    update_user,
)
from tests.support.queue import make_items


def _next(client, **kwargs):
    return client.post("/api/v1/work/next", json=None, **kwargs)


def _claimed() -> list[WorkItem]:
    with Session(get_engine()) as s:
        return list(s.exec(select(WorkItem).where(WorkItem.status == Status.in_progress)).all())


def _denied(detail: str) -> list[AuditEvent]:
    with Session(get_engine()) as s:
        rows = s.exec(
            select(AuditEvent).where(AuditEvent.outcome == "denied", AuditEvent.detail == detail)
        )
        return list(rows.all())


def test_next_answers_the_claim_with_the_item_and_its_audit_row(make_client, backend):
    (item_id,) = make_items(1)
    client = make_client()
    sign_in(client, make_user("cora", "coder", queues=["default"]))
    r = _next(client)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == item_id
    assert body["queue"] == "default"
    assert body["status"] == "in_progress"
    assert body["lease_owner"] == "cora"
    assert body["lease_expires_at"].endswith(("Z", "+00:00"))
    assert body["age_seconds"] >= 0
    with Session(get_engine()) as s:
        audit = s.exec(select(AuditEvent).where(AuditEvent.action == "claim")).one()
    assert (audit.actor, audit.actor_roles, audit.work_item_id) == ("cora", "coder", item_id)
    assert audit.request_id == r.headers["x-request-id"]
    # Pressing Next again while holding it answers the same item.
    assert _next(client).json()["id"] == item_id


def test_next_on_postgresql_is_one_statement_without_the_ordinary_path(
    make_client, backend, monkeypatch
):
    if backend != "postgresql":
        pytest.skip("the one-statement Next is PostgreSQL's")
    make_items(1)
    client = make_client()
    sign_in(client, make_user("cora", "coder", queues=["default"]))

    def ordinary(*_args, **_kwargs):
        raise AssertionError("the ordinary path ran")

    monkeypatch.setattr(queue_router, "_next_plain", ordinary)
    assert _next(client).status_code == 200


def test_next_with_a_wrong_or_missing_csrf_token_is_refused_audited_and_claims_nothing(
    make_client,
):
    make_items(1)
    client = make_client()
    sign_in(client, make_user("cora", "coder", queues=["default"]))
    good = client.headers.pop("X-CSRF-Token")
    r = _next(client, headers={"X-CSRF-Token": good[:-2] + "xx"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "csrf_failed")
    r = _next(client)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "csrf_failed")
    r = _next(client, headers={"X-CSRF-Token": good, "Origin": "https://evil.example"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "bad_origin")
    assert len(_denied("csrf")) == 2
    assert _claimed() == []
    assert _next(client, headers={"X-CSRF-Token": good}).status_code == 200


def test_next_by_someone_without_the_coder_role_is_refused_and_audited(make_client):
    make_items(1, queue="default")
    client = make_client()
    sign_in(client, make_user("sam", "supervisor", queues=["default"]))
    r = _next(client)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    assert [e.actor for e in _denied("POST /api/v1/work/next")] == ["sam"]
    assert _claimed() == []


def test_next_with_a_service_token_is_refused_as_before(make_client):
    make_items(1)
    client = make_client()
    token = make_token("engine", "ingest")
    r = _next(client, headers={"Authorization": f"Bearer {token}"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    assert _claimed() == []


def test_next_on_an_idle_session_signs_out_audits_and_claims_nothing(make_client):
    make_items(1)
    client = make_client()
    sign_in(client, make_user("cora", "coder", queues=["default"]))
    shift_session(last_seen_at=timedelta(minutes=16))
    r = _next(client)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "session_expired")
    with Session(get_engine()) as s:
        assert s.exec(select(UserSession)).all() == []
        assert "session-timeout" in s.exec(select(AuditEvent.action)).all()
    assert _claimed() == []
    r = _next(client)  # the session is gone now
    assert (r.status_code, r.json()["error"]["code"]) == (401, "not_authenticated")


def test_next_past_the_absolute_limit_is_refused(make_client):
    make_items(1)
    client = make_client()
    sign_in(client, make_user("cora", "coder", queues=["default"]))
    shift_session(created_at=timedelta(hours=12, minutes=1))
    assert _next(client).status_code == 401
    assert _claimed() == []


def test_next_by_a_deactivated_coder_is_refused(make_client):
    make_items(1)
    client = make_client()
    account = make_user("cora", "coder", queues=["default"])
    sign_in(client, account)
    update_user(account.username, is_active=False)
    assert _next(client).status_code == 401
    assert _claimed() == []


def test_next_restarts_the_idle_clock_but_a_background_request_does_not(make_client):
    make_items(2)
    client = make_client()
    sign_in(client, make_user("cora", "coder", queues=["default"]))
    shift_session(last_seen_at=timedelta(minutes=5))
    before = session_row().last_seen_at
    assert _next(client, headers={"X-Chartdesk-Background": "1"}).status_code == 200
    assert session_row().last_seen_at == before
    assert _next(client).status_code == 200
    assert session_row().last_seen_at > before + timedelta(minutes=4)


def test_next_on_a_refused_queue_does_not_touch_the_session(make_client):
    make_items(1, queue="other")
    client = make_client()
    sign_in(client, make_user("cora", "coder", queues=["default"]))
    shift_session(last_seen_at=timedelta(minutes=5))
    before = session_row().last_seen_at
    assert client.post("/api/v1/work/next", json={"queue": "other"}).status_code == 403
    assert client.post("/api/v1/work/next", json={"queue": "nowhere"}).status_code == 404
    assert session_row().last_seen_at == before


def test_next_answers_the_item_as_the_list_of_my_work_shows_it(make_client):
    make_items(1)
    client = make_client()
    sign_in(client, make_user("cora", "coder", queues=["default"]))
    claimed = _next(client).json()
    (listed,) = client.get("/api/v1/work/mine").json()["items"]
    claimed.pop("age_seconds")
    listed.pop("age_seconds")
    assert claimed == listed


def test_next_after_the_database_dropped_its_connections_recovers(make_client, backend):
    if backend != "postgresql":
        pytest.skip("the one-statement Next's own connections are PostgreSQL's")
    make_items(3)
    client = make_client()
    sign_in(client, make_user("cora", "coder", queues=["default"]))
    first = _next(client).json()["id"]
    assert client.post(f"/api/v1/work/{first}/release").status_code == 200
    with Session(get_engine()) as s:  # what a database restart does to pooled connections
        s.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    answers = [_next(client).status_code for _ in range(3)]
    assert answers.count(503) <= 1  # the request that met the dead connection, at most
    assert answers[-1] == 200
