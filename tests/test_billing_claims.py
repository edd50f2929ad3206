"""Claims against the chart, for every Synthea fixture: totals are the sum of the lines on
837P, 837I, FHIR Claim and CSV; revenue codes, place of service, address and payer come from
the chart; a claim that cannot be built truthfully is a claim edit, never a placeholder."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from server.billing.x12 import state_code
from server.config import get_settings
from server.db import get_engine
from server.models import Encounter, WorkItem
from tests.support.billing import PAYER_IDS, cents, load_demo_cdm, segments, with_coverage
from tests.support.coding import pyx12_accepts, signed_in
from tests.support.factories import make_token, make_user, sign_in

SYNTHEA = Path("/work/shared/fixtures/synthea")
FIXTURES = sorted(p.name for p in SYNTHEA.glob("*.json"))

ICD10 = datetime(2015, 10, 1, tzinfo=UTC)
DX = [{"code": "E11.9"}, {"code": "I10"}]
# Per class: the lines the coder enters and what each should bill (demo chargemaster prices,
# or the charge the coder typed, which wins).
CODES: dict[str, dict[str, Any]] = {
    "outpatient": {
        "diagnoses": DX,
        "procedures": [
            {"code": "99213", "system": "CPT", "dx_pointers": [1, 2]},
            {"code": "36415", "system": "CPT", "dx_pointers": [1]},
        ],
    },
    "emergency": {
        "diagnoses": DX,
        "procedures": [
            {"code": "99284", "system": "CPT", "dx_pointers": [1]},
            {"code": "12001", "system": "CPT", "dx_pointers": [1], "charge": 500.0},
        ],
    },
    "inpatient": {
        "diagnoses": [{"code": "E11.9", "poa": "Y"}, {"code": "I10", "poa": "Y"}],
        "procedures": [{"code": "0DTJ4ZZ", "system": "PCS", "charge": 1200.0}],
    },
}
EXPECTED_LINES = {
    "outpatient": [18500, 2800],
    "emergency": [129000, 50000],
}
POS = {"emergency": "23"}  # outpatient at a hospital: an 837I, type of bill 013x
INSTITUTIONAL = {"inpatient", "outpatient"}


def _ingest(make_client: Any, name: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The fixture (with the EHR's Coverage) ingested; the latest item of each class in the
    ICD-10 era (an older stay cannot be coded in ICD-10-CM: the coder's check refuses it)."""
    bundle = with_coverage(json.loads((SYNTHEA / name).read_text()), self_pay_to="Medicaid")
    ehr = make_client()
    ehr.headers["Authorization"] = f"Bearer {make_token('ehr', 'ingest')}"
    r = ehr.post(
        "/api/v1/fhir",
        content=json.dumps(bundle),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert r.status_code == 200, r.text
    latest: dict[str, tuple[datetime, int]] = {}
    with Session(get_engine()) as s:
        for entry in r.json()["work_items"]:
            item = s.get(WorkItem, int(entry["id"]))
            assert item is not None
            encounter = s.get(Encounter, item.encounter_id)
            assert encounter is not None
            assert encounter.start_at is not None
            start = encounter.start_at.replace(tzinfo=UTC)
            known = latest.get(encounter.encounter_class)
            if start >= ICD10 and (known is None or start > known[0]):
                latest[encounter.encounter_class] = (start, int(entry["id"]))
    return bundle, {k: v[1] for k, v in latest.items()}


def _code(make_client: Any, coder: Any, sup: Any, item_id: int, klass: str) -> None:
    assert (
        sup.post(f"/api/v1/work/{item_id}/assign", json={"username": "coder1"}).status_code == 200
    )
    if klass == "inpatient":
        abstract = {"admission_type": "1", "admission_source": "7", "discharge_status": "01"}
        r = coder.put(f"/api/v1/work/{item_id}/abstract", json=abstract)
        assert r.status_code == 200, r.text
    r = coder.put(f"/api/v1/work/{item_id}/codes", json=CODES[klass])
    assert r.json()["errors"] == [], r.text
    r = coder.post(f"/api/v1/work/{item_id}/submit")
    assert r.json()["status"] == "ready_for_billing", r.text


def _chart(bundle: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    patient = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    covers = {
        e["resource"]["payor"][0]["display"]: e["resource"]["subscriberId"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Coverage"
    }
    return patient["address"][0], covers


def _line_amounts(text: str, institutional: bool) -> list[int]:
    if institutional:
        return [cents(s[3]) for s in segments(text, "SV2")]
    return [cents(s[2]) for s in segments(text, "SV1")]


@pytest.mark.parametrize("name", FIXTURES)
def test_claims_match_the_chart_for_every_synthea_fixture(make_client, monkeypatch, name):
    # A hospital: its outpatient visits go out on 837I (013x), its ED visits on 837P (23).
    monkeypatch.setenv("CHARTDESK_BILLING_FACILITY_SETTING", "hospital")
    get_settings.cache_clear()
    load_demo_cdm()
    bundle, firsts = _ingest(make_client, name)
    address, covers = _chart(bundle)
    sign_in(coder := make_client(), make_user("coder1", "coder", queues=["default"]))
    sup = signed_in(make_client, "sup1", "supervisor")
    biller = signed_in(make_client, "biller1", "biller")
    payable = address["postalCode"] != "00000"
    for klass, item_id in firsts.items():
        _code(make_client, coder, sup, item_id, klass)
        inpatient = klass == "inpatient"
        institutional = klass in INSTITUTIONAL
        x = biller.get(f"/api/v1/billing/{item_id}/claim", params={"format": "x12"})
        record = biller.get(f"/billing/{item_id}")
        assert record.status_code == 200
        if not payable or not covers:  # Synthea's unknown ZIP, or a self-pay patient
            assert x.status_code == 422, (klass, x.text)
            codes = {d["code"] for d in x.json()["error"]["details"]}
            if not payable:
                assert "claim-address" in codes
                assert 'data-edit="claim-address"' in record.text
            if not covers:
                assert {"claim-payer-id", "claim-member-id"} <= codes
            assert "UNKNOWN" not in record.text
            continue
        assert x.status_code == 200, (klass, x.text)
        text = x.text
        ok, log = pyx12_accepts(text)
        assert ok, (klass, log)
        assert "UNKNOWN" not in text
        assert "005010X223A2" in text if institutional else "005010X222A1" in text
        # Totals: CLM02 is the sum of the service lines, and the lines are the prices.
        clm = segments(text, "CLM")[0]
        amounts = _line_amounts(text, institutional)
        assert cents(clm[2]) == sum(amounts) > 0
        if inpatient:
            revenue = [s[1] for s in segments(text, "SV2")]
            assert revenue == ["0360", "0120"], revenue  # OR (PCS rule) + room and board
            assert amounts[0] == 120000  # the charge the coder entered on the PCS line
            room = segments(text, "SV2")[1]
            assert room[4] == "DA"
            assert amounts[1] == 285000 * int(room[5])  # per day of the stay
            assert all(len(s[2].split(":")) < 2 for s in segments(text, "SV2"))
        elif institutional:  # hospital outpatient: revenue code + CPT + units + charge, dated
            assert amounts == EXPECTED_LINES[klass]
            assert clm[5] == "13:A:1"
            assert [s[1] for s in segments(text, "SV2")] == ["0510", "0300"], text
            assert [s[2] for s in segments(text, "SV2")] == ["HC:99213", "HC:36415"]
            assert len(segments(text, "DTP")) >= 3  # statement dates + one per line (472)
            assert [s[1] for s in segments(text, "DTP")].count("472") == 2
            assert "435" not in [s[1] for s in segments(text, "DTP")]  # no admission date
            assert not [s for s in segments(text, "HI") if s[1].startswith(("DR:", "ABJ:"))]
        else:
            assert amounts == EXPECTED_LINES[klass]
            assert clm[5].split(":")[0] == POS[klass]
        # The patient's address and the payer, from the chart and its Coverage.
        assert f"N3*{address['line'][0].upper()}~" in text
        state = state_code(address["state"])
        assert f"N4*{address['city'].upper()}*{state}*{address['postalCode']}~" in text
        (payer_name,) = [n for n in covers if f"NM1*PR*2*{n.upper()}*" in text]
        assert f"*PI*{PAYER_IDS[payer_name]}~" in text
        assert f"*MI*{covers[payer_name]}~" in text
        # The same total on the FHIR Claim and the CSV.
        fhir = biller.get(f"/api/v1/billing/{item_id}/claim", params={"format": "fhir"}).json()
        assert round(fhir["total"]["value"] * 100) == cents(clm[2])
        assert sum(round(i["net"]["value"] * 100) for i in fhir["item"]) == cents(clm[2])
        rows = list(
            csv.DictReader(
                io.StringIO(
                    biller.get(f"/api/v1/billing/{item_id}/claim", params={"format": "csv"}).text
                )
            )
        )
        lines = [r for r in rows if r["kind"] == "procedure"]
        assert sum(cents(r["charge"]) for r in lines) == cents(clm[2])
        assert {r["claim_total"] for r in rows} == {clm[2] if "." in clm[2] else f"{clm[2]}.00"}
        assert f"{cents(clm[2]) // 100:,}" in record.text  # the page shows the same total
