"""A rebuttal overturned: the deciding supervisor sides with the coder, so the coder's code
is back in the item's codes (what is billed), the decision is audited and on the item's
history, and a chart billed since the correction is billed again as a replacement claim."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from server.db import get_engine
from server.models import AuditEvent, WorkItemEvent
from tests.support.coding import saved_codes, signed_in
from tests.test_billing_api import _coded
from tests.test_billing_remittance import _billing
from tests.test_qa import _reviewed
from tests.test_qa_retrospective import CORRECTED, FINDINGS, _frequency, _segments, _status


def _dx(item_id: int) -> list[str]:
    with Session(get_engine()) as s:
        return [d.code for d in saved_codes(s, item_id).diagnoses]


def _overturned_events(item_id: int) -> list[tuple[str | None, str | None, str | None]]:
    with Session(get_engine()) as s:
        return [
            (e.from_status, e.to_status, e.reason)
            for e in s.exec(
                select(WorkItemEvent)
                .where(WorkItemEvent.work_item_id == item_id)
                .where(WorkItemEvent.action == "qa-overturned")
                .order_by(col(WorkItemEvent.id))
            ).all()
        ]


def _rebut(coder: Any, finding: dict[str, Any]) -> None:
    r = coder.post(
        f"/api/v1/qa/findings/{finding['id']}/response",
        json={"agree": False, "reason": "documented in the discharge summary"},
    )
    assert r.json()["status"] == "rebutted", r.text


def _decide(boss: Any, finding: dict[str, Any], decision: str) -> None:
    r = boss.post(
        f"/qa/findings/{finding['id']}/decision",
        data={"decision": decision, "csrf_token": boss.headers["X-CSRF-Token"]},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def test_overturned_principal_finding_restores_the_coders_principal(make_client):
    held, _, item_id, findings = _reviewed(make_client)
    deleted, principal = findings
    assert _dx(item_id) == ["E11.65", "I10"]
    _rebut(held.client, deleted)
    _rebut(held.client, principal)
    boss = signed_in(make_client, "boss", "supervisor")
    _decide(boss, deleted, "uphold")  # upheld: the reviewer's codes stand
    assert _dx(item_id) == ["E11.65", "I10"]
    assert _overturned_events(item_id) == []
    _decide(boss, principal, "overturn")
    assert _dx(item_id) == ["E11.9", "I10"]  # the coder's principal, in its place
    assert _status(item_id) == "ready_for_billing"
    [(before, after, why)] = _overturned_events(item_id)
    assert (before, after) == ("ready_for_billing", "ready_for_billing")
    assert why is not None
    assert "coder's code restored" in why
    assert "E11" not in why  # the history says which finding, never the codes
    history = boss.get(f"/supervise/items/{item_id}")
    assert "qa-overturned" in history.text
    with Session(get_engine()) as s:
        decisions = s.exec(
            select(AuditEvent.outcome, AuditEvent.detail, AuditEvent.patient_id)
            .where(AuditEvent.work_item_id == item_id, AuditEvent.actor == "boss")
            .order_by(col(AuditEvent.id))
        ).all()
    overturn = [d for d in decisions if "overturned" in (d[1] or "")]
    assert len(overturn) == 1
    assert overturn[0][0] == "success"
    assert overturn[0][2] is not None  # the codes were opened: an audited use of the record


def test_overturned_after_billing_restores_the_code_and_bills_a_replacement(make_client):
    system = _billing(make_client)
    held = _coded(make_client, "coder1")
    item_id = held.item_id
    assert system.post(f"/api/v1/billing/{item_id}/billed", json={"claim_number": "PAYER-77"})
    sup = signed_in(make_client, "sup1", "supervisor")
    assert sup.post(f"/api/v1/qa/{item_id}/retrospective").status_code == 200
    body = {"decision": "correct", "codes": CORRECTED, "findings": FINDINGS}
    assert sup.post(f"/api/v1/qa/{item_id}", json=body).status_code == 200
    r = system.post(f"/api/v1/billing/{item_id}/billed", json={"claim_number": "PAYER-78"})
    assert r.status_code == 200, r.text
    assert _dx(item_id) == ["E11.65", "I10"]
    findings = held.client.get("/api/v1/qa/findings").json()["items"]
    deleted = next(f for f in findings if f["kind"] == "deleted")
    _rebut(held.client, deleted)
    boss = signed_in(make_client, "boss", "supervisor")
    _decide(boss, deleted, "overturn")
    # The coder's J45.909 is back, in its line; the chart is billed again as a replacement
    # of the claim billed after the correction.
    assert _dx(item_id) == ["E11.65", "I10", "J45.909"]
    assert _status(item_id) == "ready_for_billing"
    [(before, after, _)] = _overturned_events(item_id)
    assert (before, after) == ("billed", "ready_for_billing")
    segments = _segments(system, item_id)
    assert _frequency(segments) == "7"
    assert "REF*F8*PAYER-78" in segments
    hi = next(s for s in segments if s.startswith("HI*"))
    assert "J45909" in hi
    assert (
        f'id="replaces-{item_id}"' in signed_in(make_client, "bill1", "biller").get("/billing").text
    )


def test_an_overturn_waits_while_a_coder_has_the_chart_open(make_client):
    """A chart returned by billing and resumed by its coder: overturning now would change the
    codes on the coder's screen (and their next save would undo it), so the decision is
    refused at the finding, with the reason kept; once the coder submits, it goes through."""
    held, _, item_id, findings = _reviewed(make_client)
    _, principal = findings
    _rebut(held.client, principal)
    biller = signed_in(make_client, "bill1", "biller")
    r = biller.post(f"/api/v1/billing/{item_id}/return", json={"reason": "check the principal"})
    assert r.status_code == 200, r.text
    assert held.client.post(f"/api/v1/work/{item_id}/resume").status_code == 200
    boss = signed_in(make_client, "boss", "supervisor")
    r = boss.post(
        f"/qa/findings/{principal['id']}/decision",
        data={
            "decision": "overturn",
            "reason": "the H&P supports the coder",
            "csrf_token": boss.headers["X-CSRF-Token"],
        },
        follow_redirects=False,
    )
    assert r.status_code == 409
    assert f"Chart #{item_id} is being coded right now" in r.text
    assert "the H&amp;P supports the coder" in r.text  # the reason as typed, at the finding
    assert _dx(item_id) == ["E11.65", "I10"]
    assert _overturned_events(item_id) == []
    statuses = {f["id"]: f["status"] for f in boss.get("/api/v1/qa/findings").json()["items"]}
    assert statuses[principal["id"]] == "rebutted"
    assert held.client.post(f"/api/v1/work/{item_id}/submit").status_code == 200
    _decide(boss, principal, "overturn")
    assert _dx(item_id) == ["E11.9", "I10"]
