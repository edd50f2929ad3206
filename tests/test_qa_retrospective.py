"""A retrospective QA review of a billed chart: accepted, it goes back to billed unchanged;
corrected, the corrected codes are the item's and its next claim replaces the one billed
(CLM05-3 = 7, REF*F8 = the payer's claim number: recorded when billed, or the 835's CLP07)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from server.db import get_engine
from server.models import AuditEvent, QaReview, WorkItem
from tests.support.coding import GOOD_CODES, pyx12_accepts, saved_codes, signed_in
from tests.support.factories import make_encounter, make_user, sign_in
from tests.support.remit import RemitClaim as RC
from tests.support.remit import RemitLine as RL
from tests.support.remit import build_835
from tests.test_billing_api import _coded
from tests.test_billing_remittance import _billing

X12 = {"Content-Type": "application/edi-x12"}
CORRECTED = {**GOOD_CODES, "diagnoses": [{"code": "E11.65"}, {"code": "I10"}]}
FINDINGS = [{"category": "specificity"}, {"category": "documentation_not_supported"}]


def _segments(system: Any, item_id: int) -> list[str]:
    x = system.get(f"/api/v1/billing/{item_id}/claim", params={"format": "x12"})
    assert x.status_code == 200, x.text
    ok, log = pyx12_accepts(x.text)
    assert ok, log
    return x.text.split("~\n")


def _frequency(segments: list[str]) -> str:
    clm = next(s for s in segments if s.startswith("CLM*"))
    return clm.split("*")[5].split(":")[2]


def _status(item_id: int) -> str:
    with Session(get_engine()) as s:
        item = s.get(WorkItem, item_id)
        assert item is not None
        return item.status


def test_billed_chart_reviewed_again_accepted_back_to_billed_corrected_replaces_the_claim(
    make_client,
):
    system = _billing(make_client)
    held = _coded(make_client, "coder1")
    item_id = held.item_id
    assert _frequency(_segments(system, item_id)) == "1"  # an original claim
    r = system.post(f"/api/v1/billing/{item_id}/billed", json={"claim_number": "PAYER-77"})
    assert r.status_code == 200, r.text
    sup = signed_in(make_client, "sup1", "supervisor")
    biller = signed_in(make_client, "bill1", "biller")
    # The billed chart's number links to the page a reviewer may open: the item's history.
    listed = sup.get("/qa").text
    assert f'<a href="/supervise/items/{item_id}">#{item_id}</a>' in listed
    assert sup.get(f"/supervise/items/{item_id}").status_code == 200

    # Accepted: back to billed, nothing to bill again.
    r = sup.post(f"/api/v1/qa/{item_id}/retrospective")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "qa_review"
    sheet = sup.get(f"/qa/{item_id}")  # the same worksheet, saying what follows
    assert sheet.status_code == 200
    assert 'id="retrospective"' in sheet.text
    assert sup.post(f"/api/v1/qa/{item_id}", json={"decision": "accept"}).status_code == 200
    assert _status(item_id) == "billed"
    assert f'id="ready-{item_id}"' not in biller.get("/billing").text

    # Corrected: the corrected codes are the item's, ready to bill as a replacement.
    assert sup.post(f"/api/v1/qa/{item_id}/retrospective").status_code == 200
    body = {"decision": "correct", "codes": CORRECTED, "findings": FINDINGS}
    r = sup.post(f"/api/v1/qa/{item_id}", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready_for_billing"
    with Session(get_engine()) as s:
        assert [d.code for d in saved_codes(s, item_id).diagnoses] == ["E11.65", "I10"]
        outcomes = s.exec(
            select(QaReview.outcome)
            .where(QaReview.work_item_id == item_id)
            .order_by(col(QaReview.id))
        ).all()
        assert outcomes == ["accepted", "corrected"]
        actions = s.exec(
            select(AuditEvent.action, AuditEvent.outcome).where(
                AuditEvent.work_item_id == item_id, AuditEvent.action == "qa-retrospective"
            )
        ).all()
        assert actions == [("qa-retrospective", "success")] * 2
    segments = _segments(system, item_id)
    assert _frequency(segments) == "7"
    assert "REF*F8*PAYER-77" in segments
    assert any(s.startswith("HI*ABK:E1165") for s in segments)  # the corrected codes billed
    page = biller.get("/billing")
    assert f'id="replaces-{item_id}"' in page.text
    assert "replacement of claim PAYER-77" in page.text
    claim_page = biller.get(f"/billing/{item_id}")
    assert "replacement of claim PAYER-77" in claim_page.text
    # Ready to bill again: the biller can mark the replacement billed from its page.
    assert 'id="mark-billed"' in claim_page.text
    assert "billed PAYER-77" not in claim_page.text

    # Billed again; the payer's 835 gives its own claim number (CLP07): a later correction
    # replaces that one.
    r = system.post(f"/api/v1/billing/{item_id}/billed", json={"claim_number": "PAYER-78"})
    assert r.status_code == 200, r.text
    assert f"replaces-{item_id}" not in biller.get("/billing").text
    remit = build_835([RC(f"CD{item_id}", "1", 125, 125, "ICN-9", [RL("99213", 125, 125)])])
    r = system.post("/api/v1/billing/remittance", content=remit, headers=X12)
    assert r.status_code == 200, r.text
    assert _status(item_id) == "billed"
    assert sup.post(f"/api/v1/qa/{item_id}/retrospective").status_code == 200
    body = {"decision": "correct", "codes": GOOD_CODES, "findings": FINDINGS[:1] * 2}
    r = sup.post(f"/api/v1/qa/{item_id}", json=body)
    assert r.status_code == 200, r.text
    segments = _segments(system, item_id)
    assert _frequency(segments) == "7"
    assert "REF*F8*ICN-9" in segments

    # Billed as that replacement (no 835 yet) and corrected once more: it replaces the claim
    # number just recorded, not the 835's answer to the claim before it.
    r = system.post(f"/api/v1/billing/{item_id}/billed", json={"claim_number": "PAYER-79"})
    assert r.status_code == 200, r.text
    assert sup.post(f"/api/v1/qa/{item_id}/retrospective").status_code == 200
    body = {"decision": "correct", "codes": CORRECTED, "findings": FINDINGS}
    assert sup.post(f"/api/v1/qa/{item_id}", json=body).status_code == 200
    segments = _segments(system, item_id)
    assert "REF*F8*PAYER-79" in segments
    assert "REF*F8*ICN-9" not in segments


def test_only_a_billed_chart_and_never_by_the_reviewer_who_coded_it(make_client):
    system = _billing(make_client)
    held = _coded(make_client, "coder1")
    item_id = held.item_id
    sup = signed_in(make_client, "sup1", "supervisor")
    # Not billed yet: 422 with the reason, nothing changed, the attempt audited.
    r = sup.post(f"/api/v1/qa/{item_id}/retrospective")
    assert r.status_code == 422
    assert "Only a billed chart" in r.json()["error"]["message"]
    assert r.json()["error"]["details"][0]["loc"] == ["work_item_id"]
    page = sup.post(f"/qa/{item_id}/retrospective")
    assert page.status_code == 422
    assert 'id="retrospective-error"' in page.text
    assert "Only a billed chart" in page.text
    said = page.text.split('id="retrospective-error"')[1].split("</")[0]
    assert f"chart #{item_id} is ready for billing." in said  # in words, said once
    assert "ready_for_billing" not in said
    assert _status(item_id) == "ready_for_billing"
    with Session(get_engine()) as s:
        refused = s.exec(
            select(AuditEvent.outcome).where(
                AuditEvent.work_item_id == item_id, AuditEvent.action == "qa-retrospective"
            )
        ).all()
        assert refused
        assert all(o != "success" for o in refused)
    # A coder may not send one back.
    assert held.client.post(f"/api/v1/qa/{item_id}/retrospective").status_code == 403

    # The supervisor who coded a chart may send it, but another reviewer must review it.
    own = make_encounter()
    both = make_user("dual", "coder", "supervisor", queues=["default"])
    dual = make_client()
    sign_in(dual, both)
    assert dual.post("/api/v1/work/next", json={}).json()["id"] == own
    dual.put(f"/api/v1/work/{own}/codes", json=GOOD_CODES)
    assert dual.post(f"/api/v1/work/{own}/submit").json()["status"] == "ready_for_billing"
    assert system.post(f"/api/v1/billing/{own}/billed", json={"claim_number": "P1"}).is_success
    # From the QA page: the billed chart is listed with its button, and goes to the worksheet.
    qa = sup.get("/qa")
    assert f'id="retrospective-{own}"' in qa.text
    r = sup.post(f"/qa/{own}/retrospective", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/qa/{own}"
    r = dual.post(f"/api/v1/qa/{own}", json={"decision": "accept"})
    assert r.status_code == 403
    assert "another reviewer" in r.json()["error"]["message"]
    assert _status(own) == "qa_review"
