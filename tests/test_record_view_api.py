"""`GET /api/v1/work/{id}`: every part of the chart in the answer, from its own sealed row.

The chart reads the item's queue and holder names, its codes, its abstract and its latest
return in one statement, and the encounter with its documents in another (issue 23); these
tests hold the answer to what each part's own reader gives, and the view to its statement
count, so that neither the content nor the round trips drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from sqlmodel import Session, col, select

from server.db import get_engine
from server.models import AuditEvent
from server.workbench import router as workbench_router
from tests.support.coding import coder_with_item, signed_in
from tests.test_billing_api import _coded
from tests.test_queries_api import PROVIDERS

INPATIENT_CODES = {
    "diagnoses": [{"code": "E11.9", "poa": "Y"}, {"code": "I10", "poa": "Y"}],
    "procedures": [{"code": "0DTJ4ZZ", "system": "PCS"}],
}


@contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL statements sent while the block runs."""
    sent: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        sent.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _views(item_id: int) -> list[str | None]:
    with Session(get_engine()) as s:
        return list(
            s.exec(
                select(AuditEvent.detail)
                .where(AuditEvent.work_item_id == item_id, AuditEvent.action == "view-record")
                .order_by(col(AuditEvent.id))
            ).all()
        )


def test_the_answer_carries_codes_abstract_names_providers_and_the_latest_return(make_client):
    held = _coded(make_client, "ana", providers=PROVIDERS, **{"class": "inpatient"})
    biller = signed_in(make_client, "biller1", "biller")
    for reason in ("first: add modifier 59", "second: the discharge status is 20"):
        r = biller.post(f"/api/v1/billing/{held.item_id}/return", json={"reason": reason})
        assert r.status_code == 200, r.text
        assert held.client.post(f"/api/v1/work/{held.item_id}/resume").status_code == 200
        if reason.startswith("first"):
            assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    before = len(_views(held.item_id))

    r = held.client.get(f"/api/v1/work/{held.item_id}")
    assert r.status_code == 200, r.text
    chart = r.json()
    assert chart["id"] == held.item_id
    assert chart["status"] == "in_progress"
    assert chart["queue"] == "default"
    assert chart["lease_owner"] == "ana"
    assert chart["returned"]["reason"] == "second: the discharge status is 20"  # the latest
    assert chart["returned"]["denial"] is None
    assert [d["code"] for d in chart["codes"]["diagnoses"]] == ["E11.9", "I10"]
    assert [p["code"] for p in chart["codes"]["procedures"]] == ["0DTJ4ZZ"]
    assert chart["abstract"]["admission_type"] == "3"
    assert chart["abstract"]["discharge_status"] == "01"
    assert chart["providers"] == [
        {"npi": "1245319599", "name": "Dr. Ada Whitlock"},
        {"npi": "1003000126", "name": "Dr. Ben Okafor"},
    ]
    assert chart["queries"] == []
    assert chart["documents"]
    assert all(d["text"] for d in chart["documents"])
    assert chart["drg"] is not None  # the working MS-DRG of the saved inpatient codes
    assert _views(held.item_id)[before:] == ["view=coding"]  # one audited view


def _counted_view(client, item_id: int) -> tuple[dict, list[str]]:  # type: ignore[no-untyped-def,type-arg]
    client.get(f"/api/v1/work/{item_id}")  # warm: a first request may fill caches
    with _statements() as sent:
        r = client.get(f"/api/v1/work/{item_id}")
    assert r.status_code == 200, r.text
    return r.json(), [s for s in sent if s.split(None, 1)[0].upper() in DATA]


DATA = {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}  # not BEGIN (SQLite's lock) or COMMIT


def test_a_view_is_six_statements_and_a_bare_chart_answers_empty_parts(make_client, monkeypatch):
    # The ordinary path (SQLite's, a bearer token's, and every chart the one-statement view
    # of PostgreSQL does not open: see tests/test_view_session.py).
    monkeypatch.setattr(workbench_router, "async_pool", lambda: None)
    bare = coder_with_item(make_client, "cy")
    chart, sent = _counted_view(bare.client, bare.item_id)
    # The session, the locked item, the encounter with its documents, the audit row, the
    # item's names and sealed parts, the providers (11 before issue 23): more is a regression.
    assert len(sent) <= 6, sent
    assert [s.split(None, 1)[0].upper() for s in sent].count("INSERT") == 1  # the audit row
    assert chart["codes"] == {"diagnoses": [], "procedures": [], "unrelated": []}
    assert chart["returned"] is None
    assert chart["queries"] == []
    assert chart["abstract"]["discharge_status"] is None
    assert chart["lease_owner"] == "cy"

    # A returned item adds one: whether the return was a payer's denial (remit_claim).
    held = _coded(make_client, "ana")
    biller = signed_in(make_client, "biller1", "biller")
    r = biller.post(f"/api/v1/billing/{held.item_id}/return", json={"reason": "recheck"})
    assert r.status_code == 200, r.text
    assert held.client.post(f"/api/v1/work/{held.item_id}/resume").status_code == 200
    chart, sent = _counted_view(held.client, held.item_id)
    assert len(sent) <= 7, sent
    assert chart["returned"]["reason"] == "recheck"


def test_on_postgresql_a_coders_view_is_one_statement(make_client, backend, monkeypatch):
    """Session check, lock, lease, audit event and sealed chart: one call (issue 23)."""
    if backend != "postgresql":
        pytest.skip("the one-statement view is PostgreSQL's")
    from server.db import AsyncPool

    bare = coder_with_item(make_client, "cy")
    calls: list[str] = []
    fetch = AsyncPool.fetch

    async def counted(self, sql, params, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(sql)
        return await fetch(self, sql, params, **kwargs)

    monkeypatch.setattr(AsyncPool, "fetch", counted)
    chart, sent = _counted_view(bare.client, bare.item_id)
    assert sent == []  # nothing through the ORM's engine
    assert len(calls) == 2  # the warm-up view and the counted one: one statement each
    assert all("chartdesk_view_session" in sql for sql in calls)
    assert chart["lease_owner"] == "cy"


def test_each_answered_query_on_the_chart_names_its_provider_and_who_answered(make_client):
    from tests.support.factories import fresh_totp
    from tests.test_queries_api import _provider, _query

    held = coder_with_item(make_client, "ana", providers=PROVIDERS)
    for npi, user, option in (
        ("1245319599", "drwhit", "Acute bronchitis"),
        ("1003000126", "drbo", "Community-acquired pneumonia"),
    ):
        chart = held.client.get(f"/api/v1/work/{held.item_id}").json()
        r = held.client.post(
            f"/api/v1/work/{held.item_id}/queries", json=_query(chart, provider=npi)
        )
        assert r.status_code == 200, r.text
        provider, account = _provider(make_client, user, npi=npi)
        r = provider.post(
            f"/api/v1/queries/{r.json()['id']}/answer",
            json={"option": option, "totp": fresh_totp(account)},
        )
        assert r.status_code == 200, r.text
        assert held.client.post(f"/api/v1/work/{held.item_id}/resume").status_code == 200

    chart, sent = _counted_view(held.client, held.item_id)
    assert [
        (q["provider"]["name"], q["answer"]["answered_by"], q["answer"]["option"])
        for q in chart["queries"]
    ] == [
        ("Dr. Ada Whitlock", "drwhit", "Acute bronchitis"),
        ("Dr. Ben Okafor", "drbo", "Community-acquired pneumonia"),
    ]
    # The six, plus the queries, their providers' names and their answerers, once each
    # (not two more statements per query).
    assert len(sent) <= 9, sent
