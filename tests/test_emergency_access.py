"""Break-glass: a coder or supervisor opens a chart outside their own work only by stating a
reason; the access is allowed, audited as emergency access, and flagged for compliance."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from server.db import get_engine
from server.models import AuditEvent
from server.models.base import utcnow
from tests.support.factories import make_encounter, make_user, sign_in


def _events(action: str) -> list[AuditEvent]:
    with Session(get_engine()) as s:
        return list(
            s.exec(
                select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
            ).all()
        )


def _claimed_by_someone_else(make_client) -> int:  # type: ignore[no-untyped-def]
    item = make_encounter(queue="default")
    holder = make_client()
    sign_in(holder, make_user("holder", "coder", queues=["default"]))
    assert holder.post("/api/v1/work/next").json()["id"] == item
    return item


def test_other_coder_opens_a_chart_only_with_a_listed_reason(make_client, backend):
    item = _claimed_by_someone_else(make_client)
    other = make_client()
    sign_in(other, make_user("nosy", "coder", queues=["default"]))

    assert other.get(f"/api/v1/work/{item}").status_code == 404
    refused = other.post(f"/api/v1/work/{item}/emergency-access", json={"reason": "curious"})
    assert refused.status_code == 422
    assert "listed reasons" in refused.json()["error"]["message"]
    [attempt] = _events("emergency-access")
    assert (attempt.actor, attempt.outcome, attempt.patient_id) == ("nosy", "denied", None)

    resp = other.post(f"/api/v1/work/{item}/emergency-access", json={"reason": "other"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["work_item_id"] == item
    assert body["documents"]
    assert body["patient"]["name"]
    assert "address" not in body["patient"]  # the coding view only
    assert resp.headers["cache-control"] == "no-store"

    [event] = [e for e in _events("emergency-access") if e.outcome == "success"]
    assert (event.actor, event.work_item_id) == ("nosy", item)
    assert event.purpose == "ETREAT"
    assert event.patient_id == body["patient_id"]
    assert "reason=other" in (event.detail or "")
    # The ordinary refused view is on record too.
    assert [(e.outcome, e.work_item_id) for e in _events("access") if e.actor == "nosy"] == [
        ("denied", item)
    ]


def test_supervisor_break_glass_is_flagged_for_compliance(make_client, backend):
    item = _claimed_by_someone_else(make_client)
    boss = make_client()
    sign_in(boss, make_user("boss", "supervisor"))
    assert (
        boss.post(
            f"/api/v1/work/{item}/emergency-access",
            json={"reason": "physician or facility request"},
        ).status_code
        == 200
    )

    officer = make_client()
    sign_in(officer, make_user("officer", "compliance"))
    page = officer.get("/compliance/flags")
    assert page.status_code == 200
    assert "Emergency access" in page.text
    assert "boss" in page.text


def test_billers_and_unknown_items_are_refused_and_audited(make_client, backend):
    item = _claimed_by_someone_else(make_client)
    biller = make_client()
    sign_in(biller, make_user("bill", "biller"))
    resp = biller.post(f"/api/v1/work/{item}/emergency-access", json={"reason": "other"})
    assert resp.status_code == 403

    coder = make_client()
    sign_in(coder, make_user("nosy", "coder", queues=["default"]))
    missing = coder.post("/api/v1/work/999999/emergency-access", json={"reason": "other"})
    assert missing.status_code == 404
    denied = [e for e in _events("emergency-access") if e.outcome == "denied"]
    assert [(e.actor, e.work_item_id) for e in denied] == [("nosy", 999999)]


def test_break_glass_page_shows_the_chart_read_only(make_client, backend):
    item = _claimed_by_someone_else(make_client)
    other = make_client()
    sign_in(other, make_user("nosy", "coder", queues=["default"]))
    form = other.get("/emergency-access")
    assert form.status_code == 200
    assert 'id="emergency-form"' in form.text

    page = other.post(
        "/emergency-access",
        data={"work_item_id": str(item), "reason": "correcting a coding error"},
    )
    assert page.status_code == 200, page.text
    assert 'id="emergency-banner"' in page.text
    assert 'id="documents"' in page.text
    assert "Acute bronchitis (disorder)" in page.text  # the source's coding hints
    assert "/release" not in page.text
    assert "code-entry" not in page.text
    [event] = _events("emergency-access")
    assert event.time > utcnow() - timedelta(minutes=5)
