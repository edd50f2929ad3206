"""Billing: ready list, claim exports, billed, and the return loop back to the same coder."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from server.db import get_engine
from server.models import AuditEvent, ClaimRecord, Encounter, WorkItem
from tests.support.billing import cents, load_demo_cdm, segments, with_coverage
from tests.support.coding import GOOD_CODES, coder_with_item, pyx12_accepts, signed_in
from tests.support.factories import make_token, make_user, sign_in

SYNTHEA = Path("/work/shared/fixtures/synthea")


def _coded(make_client, username="coder1", **encounter):
    held = coder_with_item(make_client, username, **encounter)
    codes = GOOD_CODES
    if encounter.get("class") == "inpatient":
        codes = {
            "diagnoses": [{"code": "E11.9", "poa": "Y"}, {"code": "I10", "poa": "Y"}],
            "procedures": [{"code": "0DTJ4ZZ", "system": "PCS"}],
        }
        abstract = {"admission_type": "3", "admission_source": "1", "discharge_status": "01"}
        r = held.client.put(f"/api/v1/work/{held.item_id}/abstract", json=abstract)
        assert r.status_code == 200, r.text
    r = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=codes)
    assert r.json()["errors"] == [], r.text
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    return held


def _actions(item_id: int) -> list[str]:
    with Session(get_engine()) as s:
        return list(
            s.exec(
                select(AuditEvent.action)
                .where(AuditEvent.work_item_id == item_id)
                .order_by(col(AuditEvent.id))
            ).all()
        )


def test_ready_list_exports_and_billed_with_a_billing_token(make_client):
    held = _coded(make_client)
    system = make_client()
    system.headers["Authorization"] = f"Bearer {make_token('billing-system', 'billing')}"
    ready = system.get("/api/v1/billing/ready")
    assert ready.status_code == 200
    items = ready.json()["items"]
    assert [i["id"] for i in items] == [held.item_id]
    assert items[0]["coded_by"] == "coder1"
    assert items[0]["encounter"]["class"] == "outpatient"
    assert "patient" not in items[0]
    x = system.get(f"/api/v1/billing/{held.item_id}/claim", params={"format": "x12"})
    assert x.status_code == 200
    assert x.headers["cache-control"] == "no-store"
    ok, log = pyx12_accepts(x.text)
    assert ok, log
    assert "005010X222A1" in x.text
    assert "NM1*PR*2*BLUE CROSS BLUE SHIELD" in x.text
    assert "N3*41 ORCHARD LANE~" in x.text
    fhir = system.get(f"/api/v1/billing/{held.item_id}/claim", params={"format": "fhir"}).json()
    assert fhir["resourceType"] == "Claim"
    assert fhir["diagnosis"][0]["diagnosisCodeableConcept"]["coding"][0]["code"] == "E11.9"
    rows = list(
        csv.DictReader(
            io.StringIO(
                system.get(f"/api/v1/billing/{held.item_id}/claim", params={"format": "csv"}).text
            )
        )
    )
    assert [r["code"] for r in rows] == ["E11.9", "I10", "J45.909", "99213"]
    again = system.get(f"/api/v1/billing/{held.item_id}/claim", params={"format": "x12"}).text
    isa13 = [t.split("~")[0].split("*")[13] for t in (x.text, again)]
    assert isa13[0] != isa13[1]  # each interchange gets its own control number
    bad = system.get(f"/api/v1/billing/{held.item_id}/claim", params={"format": "pdf"})
    assert bad.status_code == 422
    r = system.post(
        f"/api/v1/billing/{held.item_id}/billed", json={"claim_number": "CLM-2026-0001"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "billed"
    again = system.post(f"/api/v1/billing/{held.item_id}/billed", json={"claim_number": "X"})
    assert again.status_code == 409
    assert system.get("/api/v1/billing/ready").json()["items"] == []
    with Session(get_engine()) as s:
        claim = s.exec(select(ClaimRecord)).one()
        assert claim.claim_number == "CLM-2026-0001"
        assert claim.billed_by == "billing-system"
    actions = _actions(held.item_id)
    assert actions.count("claim-export") == 4
    assert "billed" in actions
    assert actions.count("view-record") == 4  # each export opened the record, audited


def test_inpatient_claim_is_an_837i(make_client):
    load_demo_cdm()
    held = _coded(make_client, **{"class": "inpatient"})
    biller = signed_in(make_client, "biller1", "biller")
    x = biller.get(f"/api/v1/billing/{held.item_id}/claim", params={"format": "x12"})
    ok, log = pyx12_accepts(x.text)
    assert ok, log
    assert "005010X223A2" in x.text
    assert "HI*ABK:E119:::::::Y~" in x.text
    assert "CL1*3*1*01~" in x.text  # from the abstract
    assert "HI*DR:" in x.text  # the MS-DRG of the billed codes
    # The PCS line is priced by its revenue code (0DTJ4ZZ: medical-surgical -> 0360 OR),
    # plus room and board per day; CLM02 is the sum of the SV2 lines.
    lines = segments(x.text, "SV2")
    assert [line[1] for line in lines] == ["0360", "0120"]
    assert lines[0][3] == "4200"
    clm = segments(x.text, "CLM")[0]
    assert cents(clm[2]) == sum(cents(line[3]) for line in lines) > 0


def test_an_unpriced_inpatient_claim_is_a_claim_edit_not_a_zero_claim(make_client):
    held = _coded(make_client, **{"class": "inpatient"})  # no chargemaster, no charge
    biller = signed_in(make_client, "biller1", "biller")
    r = biller.get(f"/api/v1/billing/{held.item_id}/claim", params={"format": "x12"})
    assert r.status_code == 422
    body = r.json()["error"]
    assert body["code"] == "claim_edits"
    assert "claim-zero-total" in [d["code"] for d in body["details"]]
    page = biller.get(f"/billing/{held.item_id}")
    assert page.status_code == 200
    assert 'data-edit="claim-zero-total"' in page.text
    assert "claim-preview-none" in page.text
    assert "CLM*" not in page.text


def test_coder_and_other_callers_cannot_export(make_client):
    held = _coded(make_client)
    r = held.client.get(f"/api/v1/billing/{held.item_id}/claim")
    assert r.status_code == 403
    biller = signed_in(make_client, "biller1", "biller")
    still_coding = coder_with_item(make_client, "coder2")
    r = biller.get(f"/api/v1/billing/{still_coding.item_id}/claim")
    assert r.status_code == 404  # not ready for billing: hidden, and audited as denied
    with Session(get_engine()) as s:
        denied = s.exec(
            select(AuditEvent).where(
                AuditEvent.work_item_id == still_coding.item_id, AuditEvent.outcome == "denied"
            )
        ).all()
        assert denied


def test_return_goes_back_to_the_same_coder_first_in_their_list(make_client):
    held = _coded(make_client)
    # The coder picks up more work meanwhile.
    from tests.support.factories import make_encounter

    make_encounter()
    assert held.client.post("/api/v1/work/next", json={}).status_code == 200
    biller = signed_in(make_client, "biller1", "biller")
    r = biller.post(
        f"/api/v1/billing/{held.item_id}/return", json={"reason": "modifier 25 unsupported"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "returned"
    mine = held.client.get("/api/v1/work/mine").json()["items"]
    assert mine[0]["id"] == held.item_id
    assert mine[0]["status"] == "returned"
    other = make_client()
    sign_in(other, make_user("coder2", "coder", queues=["default"]))
    assert other.get("/api/v1/work/mine").json()["items"] == []
    assert other.post(f"/api/v1/work/{held.item_id}/resume").status_code == 404
    # The coder resumes it, fixes the codes and submits again.
    assert held.client.post(f"/api/v1/work/{held.item_id}/resume").status_code == 200
    fixed = {**GOOD_CODES, "procedures": [{**GOOD_CODES["procedures"][0], "modifiers": []}]}
    assert held.client.put(f"/api/v1/work/{held.item_id}/codes", json=fixed).json()["errors"] == []
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.json()["status"] == "ready_for_billing"
    assert "returned" in _actions(held.item_id)


def test_biller_pages(make_client):
    held = _coded(make_client)
    biller = make_client()
    sign_in(biller, make_user("biller1", "biller"))
    page = biller.get("/billing")
    assert f"/billing/{held.item_id}" in page.text
    claim = biller.get(f"/billing/{held.item_id}")
    assert claim.status_code == 200
    assert "837P professional" in claim.text
    assert "SV1*HC:99213:25" in claim.text
    csrf = biller.headers["X-CSRF-Token"]
    r = biller.post(
        f"/billing/{held.item_id}/billed",
        data={"claim_number": "A1", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert biller.get("/billing").text.count(f"/billing/{held.item_id}") == 0


@pytest.mark.pg_only
def test_end_to_end_synthea_claim_code_submit_export_billed(make_client, backend):
    bundle = sorted(SYNTHEA.glob("*.json"))[0]
    ingest = make_client()
    ingest.headers["Authorization"] = f"Bearer {make_token('ehr', 'ingest')}"
    r = ingest.post(
        "/api/v1/fhir",
        content=json.dumps(with_coverage(json.loads(bundle.read_bytes()))),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert r.status_code == 200, r.text
    ids = [int(i["id"]) for i in r.json()["work_items"]]
    with Session(get_engine()) as s:
        outpatient = [
            i
            for i in ids
            if (item := s.get(WorkItem, i)) is not None
            and (enc := s.get(Encounter, item.encounter_id)) is not None
            and enc.encounter_class != "inpatient"
        ]
    target = outpatient[0]
    coder = make_client()
    account = make_user("coder1", "coder", queues=["default"])
    sign_in(coder, account)
    sup = signed_in(make_client, "sup1", "supervisor")
    assert sup.post(f"/api/v1/work/{target}/assign", json={"username": "coder1"}).status_code == 200
    record = coder.get(f"/api/v1/work/{target}").json()
    assert record["documents"] or record["encounter"]
    assert coder.put(f"/api/v1/work/{target}/codes", json=GOOD_CODES).json()["errors"] == []
    assert coder.post(f"/api/v1/work/{target}/submit").json()["status"] == "ready_for_billing"
    biller = signed_in(make_client, "biller1", "biller")
    assert target in [i["id"] for i in biller.get("/api/v1/billing/ready").json()["items"]]
    x = biller.get(f"/api/v1/billing/{target}/claim", params={"format": "x12"})
    ok, log = pyx12_accepts(x.text)
    assert ok, log
    assert "005010X222A1" in x.text
    r = biller.post(f"/api/v1/billing/{target}/billed", json={"claim_number": "PAYER-778899"})
    assert r.json()["status"] == "billed"
    actions = _actions(target)
    for action in ("view-record", "code-save", "submit", "claim-export", "billed"):
        assert action in actions, (action, actions)


def test_the_coder_sees_why_billing_returned_the_item(make_client):
    held = _coded(make_client)
    biller = signed_in(make_client, "biller1", "biller")
    csrf = biller.headers["X-CSRF-Token"]
    r = biller.post(
        f"/billing/{held.item_id}/return",
        data={"reason": "add modifier 59 <b>", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert held.client.post(f"/api/v1/work/{held.item_id}/resume").status_code == 200
    panel = held.client.get(f"/work/{held.item_id}/codes", headers={"HX-Request": "true"})
    assert "Returned by billing" in panel.text
    assert "add modifier 59 &lt;b&gt;" in panel.text  # escaped
    assert 'value="E11.9"' in panel.text  # the draft comes back for fixing


def test_a_refused_return_or_billed_shows_the_claim_again_with_what_was_typed(make_client):
    held = _coded(make_client)
    biller = signed_in(make_client, "biller1", "biller")
    csrf = biller.headers["X-CSRF-Token"]
    blank = biller.post(
        f"/billing/{held.item_id}/return", data={"reason": "   ", "csrf_token": csrf}
    )
    assert blank.status_code == 422
    page = blank.text
    assert 'id="claim-lines"' in page  # the claim page, not a dead end
    form = page[page.index('id="return-form"') :]
    assert 'id="form-error">Say why the item goes back.</div>' in form
    assert re.search(r'id="return-reason"[^>]*value="   "[^>]*aria-invalid="true"', form)
    bad = biller.post(
        f"/billing/{held.item_id}/billed",
        data={"claim_number": "PAYER 1 <b>", "csrf_token": csrf},
    )
    assert bad.status_code == 422
    form = bad.text[bad.text.index('id="billed-form"') :]
    assert 'id="form-error"' in form
    assert re.search(r'id="claim-number"[^>]*value="PAYER 1 &lt;b&gt;"[^>]*aria-invalid', form)
    assert 'id="form-error"' not in bad.text[bad.text.index('id="return-form"') :]
    assert 'title="Letters, digits and . _ / - only"' in form  # the browser's own hint
    with Session(get_engine()) as s:
        item = s.get(WorkItem, held.item_id)
        assert item is not None
        assert item.status == "ready_for_billing"  # nothing changed
        assert s.exec(select(ClaimRecord)).all() == []


def test_a_mistyped_provider_npi_refuses_the_export(make_client, monkeypatch):
    from server.config import get_settings

    held = _coded(make_client)
    biller = signed_in(make_client, "biller1", "biller")
    monkeypatch.setenv("CHARTDESK_BILLING_PROVIDER_NPI", "1234567890")
    get_settings.cache_clear()
    r = biller.get(f"/api/v1/billing/{held.item_id}/claim", params={"format": "x12"})
    assert r.status_code == 503
    assert "CHARTDESK_BILLING_PROVIDER_NPI is not a valid NPI" in r.json()["error"]["message"]
    with Session(get_engine()) as s:
        outcomes = s.exec(
            select(AuditEvent.outcome).where(
                AuditEvent.work_item_id == held.item_id, AuditEvent.action == "claim-export"
            )
        ).all()
        assert list(outcomes) == ["failed"]  # the refusal is kept; no export happened
