"""The access log names routes, never paths or query strings (they can carry patient data)."""

from __future__ import annotations

import logging

import pytest
from sqlmodel import Session, col, select

from server.db import get_engine
from server.models import AuditEvent
from tests.factories import make_encounter, make_user, sign_in


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
