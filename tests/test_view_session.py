"""A coder's `GET /api/v1/work/{id}` in one statement (PostgreSQL, issue 23): the session
check, the item's lock, the lease check, the `view-record` event and the sealed chart in one
call, then the same opening as `open_chart`. It must answer exactly as the ordinary path:
the same chart, the same audit row; and every chart it does not open (refused, not leased,
purged, with queries or a return) the ordinary path's own answer, with nothing written
twice. The refusal tests run on both backends: SQLite is the ordinary path, the reference."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session, col, select

from server.auth.deps import InStatementCaller
from server.db import async_pool, get_engine
from server.models import AuditEvent, Document, Encounter, User, UserSession, WorkItem
from server.records import service as records_service
from server.workbench import router as workbench_router
from tests.support.coding import Held, coder_with_item, signed_in
from tests.support.factories import session_row, shift_session, update_user
from tests.test_billing_api import _coded
from tests.test_queries_api import PROVIDERS

INPATIENT_CODES = {
    "diagnoses": [{"code": "E11.9", "poa": "Y"}, {"code": "I10", "poa": "Y"}],
    "procedures": [{"code": "0DTJ4ZZ", "system": "PCS"}],
}
ABSTRACT = {"admission_type": "3", "admission_source": "1", "discharge_status": "06"}
OUTPATIENT_CODES = {
    "diagnoses": [{"code": "J20.9"}],
    "procedures": [{"code": "99213", "system": "CPT", "units": 1, "dx_pointers": [1]}],
}


def _pg(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("the one-statement view is PostgreSQL's")


def _ordinary_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workbench_router, "async_pool", lambda: None)


def _count_ordinary(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of the ordinary path (still run)."""
    calls: list[int] = []
    plain = workbench_router._item_plain

    def counted(*args: Any) -> Any:
        calls.append(1)
        return plain(*args)

    monkeypatch.setattr(workbench_router, "_item_plain", counted)
    return calls


def _events(item_id: int, after: int = 0) -> list[dict[str, Any]]:
    with get_engine().connect() as conn:
        rows = conn.execute(
            text(
                "SELECT action, outcome, actor, actor_kind, actor_roles, patient_id, mrn_index, "
                "work_item_id, source_ip, user_agent, purpose, detail, request_id "
                "FROM audit_event WHERE work_item_id = :i AND id > :a ORDER BY id"
            ),
            {"i": item_id, "a": after},
        ).all()
    return [dict(r._mapping) for r in rows]


def _last_id() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_event")).scalar())


def _both_ways(
    held: Held, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str] | None = None
) -> tuple[list[Any], list[list[dict[str, Any]]]]:
    """The chart and its audit rows, the one-statement way and then the ordinary way."""
    answers, rows = [], []
    for ordinary in (False, True):
        with monkeypatch.context() as m:
            calls = _count_ordinary(m)
            if ordinary:
                _ordinary_only(m)
            before = _last_id()
            r = held.client.get(f"/api/v1/work/{held.item_id}", headers=headers or {})
            assert r.status_code == 200, r.text
            assert len(calls) == int(ordinary), "the one-statement view fell back"
            events = _events(held.item_id, before)
            assert [e.pop("request_id") for e in events] == [r.headers["x-request-id"]]
            answers.append(r.json())
            rows.append(events)
    # The item's age is counted when each answer is made: a second may turn between them.
    fast_age, plain_age = (answer.pop("age_seconds") for answer in answers)
    assert 0 <= plain_age - fast_age <= 1
    return answers, rows


def test_the_one_statement_view_answers_and_audits_as_the_ordinary_path(
    make_client: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pg(backend)
    # An outpatient visit with codes and providers, an inpatient stay with codes and an
    # abstract (the grouper runs: the DRG), and a bare chart.
    outpatient = coder_with_item(make_client, "ana", providers=PROVIDERS)
    r = outpatient.client.put(f"/api/v1/work/{outpatient.item_id}/codes", json=OUTPATIENT_CODES)
    assert r.status_code == 200, r.text
    stay = coder_with_item(make_client, "ben", **{"class": "inpatient"})
    assert stay.client.put(f"/api/v1/work/{stay.item_id}/abstract", json=ABSTRACT).is_success
    assert stay.client.put(f"/api/v1/work/{stay.item_id}/codes", json=INPATIENT_CODES).is_success
    bare = coder_with_item(make_client, "cy", documents=[])
    for held in (outpatient, stay, bare):
        (fast, plain), (fast_rows, plain_rows) = _both_ways(
            held, monkeypatch, headers={"User-Agent": "coder-desk"}
        )
        assert fast == plain
        assert fast_rows == plain_rows
        (row,) = fast_rows
        assert row["action"] == "view-record"
        assert row["outcome"] == "success"
        assert row["actor_roles"] == "coder"
        assert row["detail"] == "view=coding"
        assert row["purpose"] == "TREAT"
        assert row["user_agent"] == "coder-desk"
        assert row["patient_id"] == fast["patient_id"]
        assert row["mrn_index"]
    (fast, _), _ = _both_ways(outpatient, monkeypatch)
    assert fast["providers"] == [
        {"npi": "1245319599", "name": "Dr. Ada Whitlock"},
        {"npi": "1003000126", "name": "Dr. Ben Okafor"},
    ]
    assert [d["code"] for d in fast["codes"]["procedures"]] == ["99213"]
    assert fast["documents"][0]["text"].startswith("# Chief Complaint")
    (fast, _), _ = _both_ways(stay, monkeypatch)
    assert fast["drg"]["drg"]  # grouped, in a worker thread (the grouper's lock)
    assert fast["abstract"]["discharge_status"] == "06"
    (fast, _), _ = _both_ways(bare, monkeypatch)
    assert fast["documents"] == []
    assert fast["codes"] == {"diagnoses": [], "procedures": [], "unrelated": []}


def test_the_view_is_committed_before_the_chart_leaves(
    make_client: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one statement is its own transaction: when the answer arrives, another connection
    already sees the event (and a failure to answer cannot take it back)."""
    _pg(backend)
    held = coder_with_item(make_client, "ana")
    calls = _count_ordinary(monkeypatch)
    seen: list[int] = []
    answer = workbench_router._item_answer

    def answering(chart: Any) -> Any:
        with Session(get_engine()) as s:  # a connection of its own
            seen.extend(
                s.exec(
                    select(AuditEvent.id).where(
                        AuditEvent.work_item_id == held.item_id,
                        AuditEvent.action == "view-record",
                    )
                ).all()
            )
        return answer(chart)

    monkeypatch.setattr(workbench_router, "_item_answer", answering)
    assert held.client.get(f"/api/v1/work/{held.item_id}").status_code == 200
    assert calls == []
    assert len(seen) == 1


def test_the_statement_reads_every_column_of_the_item_and_encounter(
    make_client: Any, backend: str
) -> None:
    """The item and encounter come back as rows expanded from the models, so a column a
    migration adds arrives too; each equals what the ORM reads."""
    _pg(backend)
    held = coder_with_item(make_client, "ana", **{"class": "inpatient"})
    sid = session_row().id

    async def go() -> Any:
        pool = async_pool()
        assert pool is not None
        caller = InStatementCaller(
            session_hash=sid,
            activity=False,
            roles=("coder",),
            ip=None,
            user_agent=None,
            request_id=None,
        )
        found = await records_service.open_record_in_one_trip(
            pool, caller=caller, work_item_id=held.item_id
        )
        await pool.drain()
        return found

    # In a thread of its own: a browser test's event loop may be running on this one.
    with ThreadPoolExecutor(1) as own:
        found = own.submit(asyncio.run, go()).result()
    assert found is not None
    opened, read = found
    with Session(get_engine()) as s:
        item = s.get(WorkItem, held.item_id)
        assert item is not None
        encounter = s.get(Encounter, item.encounter_id)
    assert read.item.model_dump() == item.model_dump()
    assert opened.encounter is not None
    assert encounter is not None
    assert opened.encounter.model_dump() == encounter.model_dump()
    assert read.holder == "ana"
    assert read.queue == "default"


def test_charts_with_queries_or_a_return_take_the_ordinary_path_once(
    make_client: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their parts take more reading than the statement does; it writes nothing for them,
    and the ordinary path answers with exactly one audited view."""
    _pg(backend)
    held = _coded(make_client, "ana")
    biller = signed_in(make_client, "biller1", "biller")
    r = biller.post(f"/api/v1/billing/{held.item_id}/return", json={"reason": "add modifier 25"})
    assert r.status_code == 200, r.text
    assert held.client.post(f"/api/v1/work/{held.item_id}/resume").status_code == 200
    calls = _count_ordinary(monkeypatch)
    before = _last_id()
    r = held.client.get(f"/api/v1/work/{held.item_id}")
    assert r.status_code == 200, r.text
    assert r.json()["returned"]["reason"] == "add modifier 25"
    assert calls == [1]
    assert [e["action"] for e in _events(held.item_id, before)] == ["view-record"]


# ---------------------------------------------------------------- refusals (both backends)


def _viewed(item_id: int) -> list[tuple[str, str]]:
    with Session(get_engine()) as s:
        rows = s.exec(
            select(AuditEvent.action, AuditEvent.outcome)
            .where(AuditEvent.work_item_id == item_id)
            .where(col(AuditEvent.action).in_(["view-record", "access"]))
            .order_by(col(AuditEvent.id))
        ).all()
    return [(a, o) for a, o in rows]


def _session_of(s: Session, username: str) -> UserSession:
    return s.exec(
        select(UserSession)
        .join(User, col(User.id) == col(UserSession.user_id))
        .where(User.username == username)
    ).one()


def _idle_for_five_minutes(username: str) -> datetime:
    with Session(get_engine()) as s:
        row = _session_of(s, username)
        row.last_seen_at -= timedelta(minutes=5)
        s.add(row)
        s.commit()
        return row.last_seen_at


def _last_seen(username: str) -> datetime:
    with Session(get_engine()) as s:
        return _session_of(s, username).last_seen_at


def test_another_coders_item_is_404_audited_once_and_the_idle_clock_stays(
    make_client: Any,
) -> None:
    mine = coder_with_item(make_client, "ana")
    theirs = coder_with_item(make_client, "ben")
    seen = _idle_for_five_minutes("ana")
    r = mine.client.get(f"/api/v1/work/{theirs.item_id}")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    assert _viewed(theirs.item_id) == [("access", "denied")]
    assert _last_seen("ana") == seen  # a refused request restarts no clock (it rolls back)


def test_an_expired_lease_is_409_and_nothing_is_opened(make_client: Any) -> None:
    held = coder_with_item(make_client, "ana")
    with Session(get_engine()) as s:
        item = s.get(WorkItem, held.item_id)
        assert item is not None
        assert item.lease_expires_at is not None
        item.lease_expires_at -= timedelta(hours=2)
        s.add(item)
        s.commit()
    r = held.client.get(f"/api/v1/work/{held.item_id}")
    assert (r.status_code, r.json()["error"]["code"]) == (409, "lease_expired")
    assert ("view-record", "success") not in _viewed(held.item_id)


def test_a_purged_record_is_410_audited_as_failed_once(make_client: Any) -> None:
    held = coder_with_item(make_client, "ana")
    with Session(get_engine()) as s:
        s.execute(
            text(
                "UPDATE data_key SET wrapped = NULL WHERE id = (SELECT e.data_key_id FROM "
                "encounter e JOIN work_item w ON w.encounter_id = e.id WHERE w.id = :i)"
            ),
            {"i": held.item_id},
        )
        s.commit()
    r = held.client.get(f"/api/v1/work/{held.item_id}")
    assert (r.status_code, r.json()["error"]["code"]) == (410, "record_purged")
    assert _viewed(held.item_id) == [("view-record", "failed")]


def test_a_broken_seal_is_500_and_audited_as_failed(make_client: Any, backend: str) -> None:
    """A document altered at rest: the answer is the integrity error and the log says the
    opening failed. The ordinary path rolls its view event back with the request; the one
    statement committed its view event with the read, so the failure follows it."""
    held = coder_with_item(make_client, "ana")
    with Session(get_engine()) as s:
        item = s.get(WorkItem, held.item_id)
        assert item is not None
        doc = s.exec(select(Document).where(Document.encounter_id == item.encounter_id)).one()
        doc.sealed = doc.sealed[:-1] + bytes([doc.sealed[-1] ^ 1])
        s.add(doc)
        s.commit()
    r = held.client.get(f"/api/v1/work/{held.item_id}")
    assert (r.status_code, r.json()["error"]["code"]) == (500, "record_integrity")
    expected = [("view-record", "failed")]
    if backend == "postgresql":
        expected = [("view-record", "success"), ("view-record", "failed")]
    assert _viewed(held.item_id) == expected
    assert "Chief Complaint" not in r.text


def test_signed_out_idle_or_not_a_coder_is_refused_before_anything_is_read(
    make_client: Any,
) -> None:
    held = coder_with_item(make_client, "ana")
    url = f"/api/v1/work/{held.item_id}"
    assert make_client().get(url).status_code == 401
    biller = signed_in(make_client, "bill", "biller")
    r = biller.get(url)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    update_user("ana", is_active=False)
    assert held.client.get(url).status_code == 401
    assert ("view-record", "success") not in _viewed(held.item_id)


def test_a_view_restarts_the_idle_clock_but_a_background_one_does_not(
    make_client: Any,
) -> None:
    held = coder_with_item(make_client, "ana")
    shift_session(last_seen_at=timedelta(minutes=5))
    before = session_row().last_seen_at
    url = f"/api/v1/work/{held.item_id}"
    assert held.client.get(url, headers={"X-Chartdesk-Background": "1"}).status_code == 200
    assert session_row().last_seen_at == before
    assert held.client.get(url).status_code == 200
    assert session_row().last_seen_at > before + timedelta(minutes=4)
