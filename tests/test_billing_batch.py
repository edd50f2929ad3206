"""Batch export: one X12 interchange for the claims the biller selects (or a day's), each
under its own claim number, control numbers unique and increasing across exports; billed
history with search; claims with edits stay out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from server.db import get_engine
from server.models import AuditEvent, ClaimRecord, WorkItem
from tests.support.billing import cents, load_demo_cdm, segments
from tests.support.coding import GOOD_CODES, coder_with_item, pyx12_accepts, signed_in
from tests.support.factories import make_token

INPATIENT_CODES = {
    "diagnoses": [{"code": "E11.9", "poa": "Y"}, {"code": "I10", "poa": "Y"}],
    "procedures": [{"code": "0DTJ4ZZ", "system": "PCS", "charge": 1200.0}],
}


def _ready(make_client: Any, n: int, **encounter: Any) -> int:
    held = coder_with_item(make_client, f"coder{n}", **encounter)
    codes = GOOD_CODES
    if encounter.get("class") == "inpatient":
        codes = INPATIENT_CODES
        abstract = {"admission_type": "3", "admission_source": "1", "discharge_status": "01"}
        assert held.client.put(f"/api/v1/work/{held.item_id}/abstract", json=abstract).is_success
    r = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=codes)
    assert r.json()["errors"] == [], r.text
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    return held.item_id


def _billing_system(make_client: Any) -> Any:
    client = make_client()
    client.headers["Authorization"] = f"Bearer {make_token('clearinghouse-feed', 'billing')}"
    return client


def _controls(text: str) -> tuple[int, list[int], list[int]]:
    isa = int(segments(text, "ISA")[0][13])
    gs = [int(s[6]) for s in segments(text, "GS")]
    st = [int(s[2]) for s in segments(text, "ST")]
    assert [int(s[2]) for s in segments(text, "GE")] == gs
    assert [int(s[2]) for s in segments(text, "SE")] == st
    assert int(segments(text, "IEA")[0][2]) == isa
    return isa, gs, st


def test_one_interchange_with_each_selected_claim_and_increasing_controls(make_client):
    load_demo_cdm()
    office = _ready(make_client, 1)
    stay = _ready(make_client, 2, **{"class": "inpatient"})
    later = _ready(make_client, 3)
    system = _billing_system(make_client)
    r = system.post("/api/v1/billing/batch", json={"items": [stay, office]})
    assert r.status_code == 200, r.text
    text = r.text
    ok, log = pyx12_accepts(text)
    assert ok, log
    assert len(segments(text, "ISA")) == 1
    assert [s[8] for s in segments(text, "GS")] == ["005010X222A1", "005010X223A2"]
    assert [s[1] for s in segments(text, "CLM")] == [f"CD{office}", f"CD{stay}"]
    for clm in segments(text, "CLM"):
        assert cents(clm[2]) > 0
    first = _controls(text)
    assert r.headers["X-Interchange-Control"] == str(first[0])
    # The claims went out: billed under their claim numbers, in this interchange.
    with Session(get_engine()) as s:
        for item_id in (office, stay):
            item = s.get(WorkItem, item_id)
            assert item is not None
            assert item.status == "billed"
            record = s.exec(select(ClaimRecord).where(ClaimRecord.work_item_id == item_id)).one()
            assert (record.claim_number, record.interchange) == (f"CD{item_id}", first[0])
            actions = s.exec(
                select(AuditEvent.action).where(AuditEvent.work_item_id == item_id)
            ).all()
            assert {"view-record", "claim-export", "billed"} <= set(actions)
    # A billed claim is not sent twice; the next export takes the next numbers.
    again = system.post("/api/v1/billing/batch", json={"items": [office]})
    assert again.status_code == 409
    second = _controls(system.post("/api/v1/billing/batch", json={"items": [later]}).text)
    single = system.get(f"/api/v1/billing/{office}/claim", params={"format": "x12"}).text
    third = _controls(single)
    assert first[0] < second[0] < third[0]
    assert max(first[1]) < min(second[1]) <= max(second[1]) < min(third[1])
    assert max(first[2]) < min(second[2]) <= max(second[2]) < min(third[2])
    assert len(set(first[2])) == len(first[2]) == 2
    # Billed history: newest first, found by claim number or interchange.
    history = system.get("/api/v1/billing/history").json()["items"]
    assert [h["claim_number"] for h in history] == [f"CD{later}", f"CD{stay}", f"CD{office}"]
    assert "patient" not in history[0]
    found = system.get("/api/v1/billing/history", params={"q": f"cd{stay}"}).json()["items"]
    assert [h["id"] for h in found] == [stay]
    by_isa = system.get("/api/v1/billing/history", params={"q": str(first[0])}).json()["items"]
    assert {h["id"] for h in by_isa} >= {office, stay}


def test_a_selected_claim_with_edits_refuses_the_batch_and_nothing_changes(make_client):
    load_demo_cdm()
    good = _ready(make_client, 1)
    self_pay = _ready(make_client, 2, payer={"name": "Self pay"})
    system = _billing_system(make_client)
    r = system.post("/api/v1/billing/batch", json={"items": [good, self_pay]})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "claim_edits"
    assert {d["code"] for d in error["details"]} >= {"claim-payer-id", "claim-member-id"}
    assert all(d["loc"][:2] == ["items", self_pay] for d in error["details"])
    with Session(get_engine()) as s:
        assert s.get(WorkItem, good).status == "ready_for_billing"  # type: ignore[union-attr]
        assert s.exec(select(ClaimRecord)).all() == []
    bad = system.post("/api/v1/billing/batch", json={"items": [good], "date": "2026-11-27"})
    assert bad.status_code == 422
    assert system.post("/api/v1/billing/batch", json={}).status_code == 422
    for wild in (0, -5, 2**31, 10**30):  # not a row id: refused before the database sees it
        r = system.post("/api/v1/billing/batch", json={"items": [good, wild]})
        assert r.status_code == 422, r.text
        assert [str(x) for x in r.json()["error"]["details"][0]["loc"][:3]] == [
            "body",
            "items",
            "1",
        ]
    # A day's claims: the one with edits is left out and named.
    today = datetime.now(UTC).date().isoformat()
    day = system.post("/api/v1/billing/batch", json={"date": today})
    assert day.status_code == 200, day.text
    assert [s[1] for s in segments(day.text, "CLM")] == [f"CD{good}"]
    assert day.headers["X-Skipped-Items"] == str(self_pay)


def test_biller_pages_batch_and_history(make_client):
    load_demo_cdm()
    office = _ready(make_client, 1)
    self_pay = _ready(make_client, 2, payer={"name": "Self pay"})
    biller = signed_in(make_client, "biller1", "biller")
    csrf = biller.headers["X-CSRF-Token"]
    page = biller.get("/billing")
    assert f'name="items" value="{office}"' in page.text
    nothing = biller.post("/billing/batch", data={"scope": "selected", "csrf_token": csrf})
    assert nothing.status_code == 422
    assert (
        "No claim ready to bill is selected.</div>" in nothing.text
    )  # one sentence, no API jargon
    refused = biller.post(
        "/billing/batch",
        data={"items": [str(office), str(self_pay)], "scope": "selected", "csrf_token": csrf},
    )
    assert refused.status_code == 422
    assert 'id="batch-error"' in refused.text
    assert "payer id" in refused.text
    assert (
        f'value="{self_pay}" id="pick-{self_pay}" aria-label="Send claim CD{self_pay}" checked'
        in (refused.text)
    )
    sent = biller.post(
        "/billing/batch", data={"items": [str(office)], "scope": "selected", "csrf_token": csrf}
    )
    assert sent.status_code == 200
    assert "attachment" in sent.headers["Content-Disposition"]
    assert f"CLM*CD{office}*" in sent.text
    history = biller.get("/billing/history", params={"q": f"CD{office}"})
    assert f"CD{office}" in history.text
    assert (
        biller.get("/billing/history", params={"q": "nothing-like-it"}).text.count("<tr id=") == 0
    )
    claim = biller.get(f"/billing/{office}")  # a billed claim still opens, audited
    assert "billed CD" in claim.text
    assert 'id="claim-total"' in claim.text
    with Session(get_engine()) as s:
        views = s.exec(
            select(AuditEvent.action)
            .where(AuditEvent.work_item_id == office)
            .order_by(col(AuditEvent.id).desc())
        ).first()
        assert views == "view-record"
