"""The access log names routes, never paths or query strings (they can carry patient data)."""

from __future__ import annotations

import logging

import pytest
from sqlmodel import Session, col, select

from server.db import get_engine
from server.models import AuditEvent
from tests.support.factories import make_encounter, make_token, make_user, sign_in


def test_access_log_has_the_route_not_the_mrn(
    make_client, backend, caplog: pytest.LogCaptureFixture
):
    officer = make_client()
    sign_in(officer, make_user("officer", "compliance"))
    caplog.set_level(logging.INFO, logger="chartdesk.access")
    resp = officer.get("/api/v1/audit/events", params={"patient": "MRN-4471-SECRET"})
    assert resp.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "chartdesk.access"]
    assert any(line.startswith("GET /api/v1/audit/events 200 ") for line in lines), lines
    assert "MRN-4471-SECRET" not in caplog.text


def test_qa_page_for_an_item_not_in_review_is_refused_and_audited(make_client, backend):
    item = make_encounter(queue="default")
    boss = make_client()
    sign_in(boss, make_user("boss", "supervisor"))
    assert boss.get(f"/qa/{item}").status_code == 404
    with Session(get_engine()) as s:
        events = s.exec(
            select(AuditEvent)
            .where(AuditEvent.actor == "boss", AuditEvent.work_item_id == item)
            .order_by(col(AuditEvent.id))
        ).all()
    assert [(e.action, e.outcome) for e in events] == [("view-record", "denied")]


def test_refused_oversized_bodies_are_logged_as_413(
    client, backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """Declared too large (refused before routing) and streamed past the limit (chunked,
    no Content-Length): both answer 413, and the access log says 413, not 500 or nothing."""
    from tests.conftest import reset_caches

    monkeypatch.setenv("CHARTDESK_MAX_BODY_BYTES", "2048")
    reset_caches()
    caplog.set_level(logging.INFO, logger="chartdesk.access")

    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    declared = client.post(
        "/api/v1/session", content=b"x" * 5000, headers={"content-type": "application/json"}
    )
    streamed_json = client.post(
        "/api/v1/session", content=chunks(), headers={"content-type": "application/json"}
    )
    streamed_form = client.post(
        "/login",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded", "Accept": "text/html"},
    )
    streamed_ingest = client.post(
        "/api/v1/fhir",
        content=chunks(),
        headers={
            "content-type": "application/fhir+json",
            "Authorization": f"Bearer {make_token('engine', 'ingest')}",
        },
    )
    for r in (declared, streamed_json, streamed_ingest):
        assert r.status_code == 413, r.text[:200]
        assert r.json()["error"]["code"] == "payload_too_large"
    assert streamed_form.status_code == 413
    assert "text/html" in streamed_form.headers["content-type"]
    lines = [r.getMessage() for r in caplog.records if r.name == "chartdesk.access"]
    statuses = [line.split()[2] for line in lines]
    assert statuses == ["413", "413", "413", "413"], lines
