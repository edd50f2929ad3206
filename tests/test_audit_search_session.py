"""A compliance officer's audit search checks the session inside its one statement
(PostgreSQL, issue 23) and answers exactly as the ordinary path: the same page, the same
cursors, the same `audit-search` row; every refusal the ordinary rule's own (status, code,
audited), with nothing searched. The refusal tests run on both backends: SQLite is the
ordinary path, the reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from server.audit import review
from server.audit import router as audit_router
from server.db import get_engine, session_scope
from server.models import AuditEvent, Patient, UserSession
from tests.support.factories import (
    make_encounter,
    make_user,
    session_row,
    shift_session,
    sign_in,
    update_user,
)

MRN = "MRN-SEARCH-4410"
EVENTS = "/api/v1/audit/events"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _patient_id() -> int:
    with Session(get_engine()) as s:
        ids = s.exec(select(Patient.id).where(Patient.mrn_index == review.patient_index(MRN)))
        (found,) = ids.all()
        assert found is not None
        return found


def _history(patient: int) -> None:
    """Back-dated events: three actors, two work items, views, refusals, the patient's."""
    with session_scope() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL session_replication_role = replica"))
        for n in range(24):
            session.add(
                AuditEvent(
                    time=T0 + timedelta(hours=7 * n) if n != 5 else T0 + timedelta(hours=7 * 4),
                    action=("view-record", "claim", "submit")[n % 3],
                    outcome="denied" if n % 5 == 0 else "success",
                    actor=("cora", "dev", "eli")[n % 3 if n % 4 else 0],
                    actor_kind="user",
                    actor_roles="coder",
                    work_item_id=(11, 12)[n % 2],
                    patient_id=patient if n % 3 == 0 else None,
                    purpose="TREAT",
                )
            )


def _compliance(make_client: Any, name: str = "cleo") -> Any:
    client = make_client()
    sign_in(client, make_user(name, "compliance"))
    return client


def _searches() -> list[dict[str, Any]]:
    month = {"since": "2026-03-01T00:00:00Z", "until": "2026-04-01T00:00:00Z"}
    return [
        {"patient": MRN, **month},
        {"patient": f" {MRN.lower()} ", "outcome": "denied"},
        {"patient": "NO-SUCH-MRN"},
        {"actor": "cora", "limit": 3},
        {"actor": "dev", "action": "claim"},
        {"work_item": 12, "outcome": "denied"},
        {"action": "view-record", "since": "2026-03-03T00:00:00+01:00", "limit": 2},
        {"outcome": "success", "until": "2026-03-05T12:00:00", "limit": 4},
        # Empty filters are no filters (as the form sends them), not "equals ''".
        {"action": "", "outcome": "", "until": "2026-03-10T00:00:00Z", "limit": 5},
    ]


def _all_pages(client: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    pages, cursor = [], None
    while True:
        r = client.get(EVENTS, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        pages.append(r.json())
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return pages


def _search_rows(after: int) -> list[dict[str, Any]]:
    with get_engine().connect() as conn:
        rows = conn.execute(
            text(
                "SELECT actor, actor_kind, actor_roles, outcome, patient_id, mrn_index, "
                "work_item_id, source_ip, user_agent, purpose, detail, request_id "
                "FROM audit_event WHERE action = 'audit-search' AND id > :a ORDER BY id"
            ),
            {"a": after},
        ).all()
    return [dict(r._mapping) for r in rows]


def _last_id() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_event")).scalar())


def _ordinary_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_router, "async_pool", lambda: None)


def _fast_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def ordinary(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the ordinary path ran")

    monkeypatch.setattr(audit_router, "_events_plain", ordinary)


def _pg(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("the one-statement search is PostgreSQL's")


def test_the_one_statement_search_answers_every_filter_as_the_ordinary_path(
    make_client: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pg(backend)
    make_encounter(patient={"mrn": MRN, "name": "Ada Brightwater"})
    _history(_patient_id())
    client = _compliance(make_client)
    for params in _searches():
        with monkeypatch.context() as m:
            _fast_only(m)
            fast = _all_pages(client, params)
        with monkeypatch.context() as m:
            _ordinary_only(m)
            plain = _all_pages(client, params)
        assert fast == plain, params
        assert sum(len(p["items"]) for p in fast) == sum(len(p["items"]) for p in plain)
    # The filters do select: the patient's month is its own 8 events, newest first.
    (page,) = _all_pages(client, _searches()[0])
    times = [i["time"] for i in page["items"]]
    assert len(times) == 8
    assert times == sorted(times, reverse=True)
    assert {i["patient"] for i in page["items"]} == {_patient_id()}
    assert page["items"][0]["time"].endswith("Z")


def test_the_one_statement_search_writes_the_ordinary_audit_row(
    make_client: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pg(backend)
    make_encounter(patient={"mrn": MRN, "name": "Ada Brightwater"})
    client = _compliance(make_client)
    params = {"patient": MRN, "action": "view-record", "since": "2026-03-01T00:00:00Z"}
    rows, ids = [], []
    for path in (_fast_only, _ordinary_only):
        with monkeypatch.context() as m:
            path(m)
            before = _last_id()
            r = client.get(EVENTS, params=params, headers={"User-Agent": "compliance-desk"})
            assert r.status_code == 200, r.text
            (row,) = _search_rows(before)
            ids.append(r.headers["x-request-id"])
            rows.append(row)
    assert [row.pop("request_id") for row in rows] == ids
    assert rows[0] == rows[1]
    assert rows[0]["actor"] == "cleo"
    assert rows[0]["actor_roles"] == "compliance"
    assert rows[0]["patient_id"] == _patient_id()
    assert rows[0]["mrn_index"] == review.patient_index(MRN)
    assert rows[0]["purpose"] == "HCOMPL"
    assert rows[0]["user_agent"] == "compliance-desk"
    assert MRN not in rows[0]["detail"]


def test_a_search_finds_itself_and_commits_before_it_answers(
    make_client: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pg(backend)
    _fast_only(monkeypatch)
    client = _compliance(make_client)
    body = client.get(EVENTS, params={"action": "audit-search"}).json()
    assert [(i["actor"], i["action"]) for i in body["items"]] == [("cleo", "audit-search")]
    with Session(get_engine()) as s:  # another connection sees it: it is committed
        assert s.exec(select(AuditEvent.id).where(AuditEvent.id == body["items"][0]["id"])).one()


# ---------------------------------------------------------------- refusals (both backends)


def _searched() -> int:
    with Session(get_engine()) as s:
        return len(s.exec(select(AuditEvent.id).where(AuditEvent.action == "audit-search")).all())


def test_a_coder_is_refused_audited_and_nothing_is_searched(make_client: Any) -> None:
    client = make_client()
    sign_in(client, make_user("cora", "coder", queues=["default"]))
    r = client.get(EVENTS, params={"actor": "cora"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    with Session(get_engine()) as s:
        denied = s.exec(select(AuditEvent).where(AuditEvent.outcome == "denied")).all()
    assert [(e.actor, e.detail) for e in denied] == [("cora", "GET /api/v1/audit/events")]
    assert _searched() == 0


def test_without_a_session_the_search_asks_to_sign_in(make_client: Any) -> None:
    r = make_client().get(EVENTS)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "not_authenticated")
    assert _searched() == 0


def test_an_idle_session_is_signed_out_audited_and_nothing_is_searched(make_client: Any) -> None:
    client = _compliance(make_client)
    shift_session(last_seen_at=timedelta(minutes=16))
    r = client.get(EVENTS, params={"action": "not-an-action"})  # 401 comes before the 422
    assert (r.status_code, r.json()["error"]["code"]) == (401, "session_expired")
    with Session(get_engine()) as s:
        assert s.exec(select(UserSession)).all() == []
        assert "session-timeout" in s.exec(select(AuditEvent.action)).all()
    assert _searched() == 0


def test_past_the_absolute_limit_or_deactivated_the_search_is_refused(make_client: Any) -> None:
    client = _compliance(make_client)
    shift_session(created_at=timedelta(hours=12, minutes=1))
    assert client.get(EVENTS).status_code == 401
    client = _compliance(make_client, "cyd")
    update_user("cyd", is_active=False)
    assert client.get(EVENTS).status_code == 401
    assert _searched() == 0


def test_a_bad_filter_answers_422_at_its_field_and_searches_nothing(make_client: Any) -> None:
    client = _compliance(make_client)
    for params, field in (
        ({"action": "not-an-action"}, "action"),
        ({"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "since"),
        ({"limit": 501}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        # A time the check cannot convert: refused, never searched without its window.
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
    ):
        r = client.get(EVENTS, params=params)
        assert r.status_code == 422, params
        assert field in r.text
    assert _searched() == 0


def test_a_search_restarts_the_idle_clock_but_a_background_one_does_not(
    make_client: Any,
) -> None:
    client = _compliance(make_client)
    shift_session(last_seen_at=timedelta(minutes=5))
    before = session_row().last_seen_at
    assert client.get(EVENTS, headers={"X-Chartdesk-Background": "1"}).status_code == 200
    assert session_row().last_seen_at == before
    assert client.get(EVENTS).status_code == 200
    assert session_row().last_seen_at > before + timedelta(minutes=4)


def test_searches_hold_at_most_a_third_of_the_connections_next_uses(db_url: str) -> None:
    """Slow audit searches (a big log) never hold every connection of the event loop's pool:
    at most a third run at once, and Next's statement does not wait for any of them."""
    if not db_url.startswith("postgresql"):
        pytest.skip("the event loop's pool is PostgreSQL's")
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from server.db import async_pool

    sleeping = (
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(0.5)%%' "
        "AND state = 'active'"
    )

    async def go() -> tuple[int, int]:
        pool = async_pool()
        assert pool is not None
        slow = [  # more than the pool's 7 connections
            asyncio.create_task(pool.fetch("SELECT pg_sleep(0.5)", {}, long=True)) for _ in range(8)
        ]
        await asyncio.sleep(0.1)
        (running,) = await pool.fetchone(sleeping, {}) or (0,)  # Next's kind of statement
        finished = sum(t.done() for t in slow)
        await asyncio.gather(*slow)
        return int(running), finished

    # In a thread of its own: a browser test's event loop may be running on this one.
    with ThreadPoolExecutor(1) as own:
        running, finished = own.submit(asyncio.run, go()).result()
    assert running == 2  # a third of 7 (CHARTDESK_DB_POOL_SIZE 30 // 4)
    assert finished == 0  # the short statement did not queue behind a search
