"""The inpatient abstract (issue 16): NUBC admission type, point of origin and discharge
status, set by the coder holding the item, sealed, required at submit for inpatient stays,
and the discharge status given to the grouper (died vs alive)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.support.coding import GOOD_CODES, coder_with_item

STAY = {
    "class": "inpatient",
    "start": datetime(2026, 1, 10, 8, 0, tzinfo=UTC),
    "end": datetime(2026, 1, 14, 11, 0, tzinfo=UTC),
}

ABSTRACT = {
    "admission_type": "1",
    "admission_source": "7",
    "discharge_status": "01",
    "admission_hour": 8,
    "attending_npi": "1234567893",
    "admitting_diagnosis": "I21.4",
    "operating_npi": "1245319599",
    "procedure_dates": {"02703ZZ": "2026-01-11"},
    "birth_weight_grams": None,
    "admission_date": None,  # the source's (none in this test's PUT)
}


def _codes(held: Any, *dx: str) -> dict[str, Any]:
    body = {"diagnoses": [{"code": c, "poa": "Y"} for c in dx], "procedures": []}
    r = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_set_and_read_the_abstract(make_client):
    held = coder_with_item(make_client, **STAY)
    item = held.client.get(f"/api/v1/work/{held.item_id}").json()
    assert item["abstract"]["discharge_status"] is None
    r = held.client.put(f"/api/v1/work/{held.item_id}/abstract", json=ABSTRACT)
    assert r.status_code == 200, r.text
    assert r.json() == ABSTRACT
    item = held.client.get(f"/api/v1/work/{held.item_id}").json()
    assert item["abstract"] == ABSTRACT


def test_a_code_outside_its_nubc_list_is_422_at_the_field(make_client):
    held = coder_with_item(make_client, **STAY)
    for field, bad in (
        ("admission_type", "7"),
        ("admission_source", "3"),
        ("discharge_status", "08"),
        ("discharge_status", "99"),
        ("admitting_diagnosis", "I21~ISA*"),
        ("attending_npi", "12345"),
        ("admission_hour", 24),
    ):
        r = held.client.put(f"/api/v1/work/{held.item_id}/abstract", json={field: bad})
        assert r.status_code == 422, (field, bad)
        locs = [d["loc"] for d in r.json()["error"]["details"]]
        assert ["body", field] in locs, r.text
    item = held.client.get(f"/api/v1/work/{held.item_id}").json()
    assert item["abstract"]["discharge_status"] is None


def test_another_coder_cannot_set_it(make_client):
    held = coder_with_item(make_client, **STAY)
    other = coder_with_item(make_client, "coder2")
    r = other.client.put(f"/api/v1/work/{held.item_id}/abstract", json=ABSTRACT)
    assert r.status_code == 404


def test_inpatient_submit_needs_a_discharge_status(make_client):
    held = coder_with_item(make_client, **STAY)
    _codes(held, "I50.23")
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.status_code == 422, r.text
    problems = [d for d in r.json()["error"]["details"] if d.get("code") == "abstract-required"]
    assert problems
    assert problems[0]["loc"] == ["abstract", "discharge_status"]
    r = held.client.put(f"/api/v1/work/{held.item_id}/abstract", json={"discharge_status": "01"})
    assert r.status_code == 200
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.status_code == 200, r.text


def test_outpatient_submit_needs_no_abstract(make_client):
    held = coder_with_item(make_client)
    r = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert r.status_code == 200
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.status_code == 200, r.text


def test_the_grouper_uses_the_discharge_status(make_client):
    """AMI: MS-DRG 282 discharged alive without CC/MCC, 285 expired (v43)."""
    held = coder_with_item(make_client, **STAY)
    assert _codes(held, "I21.4")["drg"]["drg"] == "282"
    r = held.client.put(f"/api/v1/work/{held.item_id}/abstract", json={"discharge_status": "20"})
    assert r.status_code == 200
    assert _codes(held, "I21.4")["drg"]["drg"] == "285"
    assert held.client.get(f"/api/v1/work/{held.item_id}").json()["drg"]["drg"] == "285"
    # The check as you type groups with the saved abstract too (before any save), and
    # opening the abstract for it is audited as its own use; nothing is saved.
    from sqlmodel import Session, select

    from server.db import get_engine
    from server.models import AuditEvent

    with Session(get_engine()) as s:
        saves = len(s.exec(select(AuditEvent).where(AuditEvent.action == "code-save")).all())
    form = {
        "dx_code": ["I21.4"],
        "dx_poa": ["Y"],
        "csrf_token": held.client.headers["X-CSRF-Token"],
    }
    check = held.client.post(
        f"/work/{held.item_id}/codes/check", data=form, headers={"HX-Request": "true"}
    )
    assert check.status_code == 200
    assert "Working DRG 285" in check.text
    with Session(get_engine()) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.work_item_id == held.item_id)).all()
        assert [e.action for e in events].count("code-check") == 1
        assert [e.action for e in events].count("code-save") == saves


def test_the_abstract_is_stored_sealed(make_client):
    from sqlmodel import Session

    from server.db import get_engine
    from server.models import ItemAbstract

    held = coder_with_item(make_client, **STAY)
    r = held.client.put(f"/api/v1/work/{held.item_id}/abstract", json=ABSTRACT)
    assert r.status_code == 200
    with Session(get_engine()) as s:
        row = s.get(ItemAbstract, held.item_id)
        assert row is not None
        assert b"1234567893" not in row.sealed_abstract
        assert b"I21.4" not in row.sealed_abstract


def test_fhir_hospitalization_codes_become_nubc_codes():
    from server.records import fhir
    from tests.support.records import fixture_files, load

    bundle = load(fixture_files()[0])
    encounters = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"
    ]
    hl7 = "http://terminology.hl7.org/CodeSystem/"
    encounters[0]["hospitalization"] = {
        "admitSource": {"coding": [{"system": hl7 + "admit-source", "code": "emd"}]},
        "dischargeDisposition": {
            "coding": [{"system": hl7 + "discharge-disposition", "code": "exp"}]
        },
    }
    encounters[1]["hospitalization"] = {
        "admitSource": {"coding": [{"system": hl7 + "admit-source", "code": "born"}]},
    }
    parsed = fhir.parse_bundle(bundle)
    admissions = [e.admission for e in parsed if e.admission is not None]
    assert [(a.admission_source, a.discharge_status) for a in admissions] == [("7", "20")]


def test_the_source_admission_prefills_the_abstract(make_client):
    held = coder_with_item(
        make_client, **STAY, admission={"admission_source": "7", "discharge_status": "20"}
    )
    item = held.client.get(f"/api/v1/work/{held.item_id}").json()
    assert item["abstract"]["admission_source"] == "7"
    assert item["abstract"]["discharge_status"] == "20"
    assert item["abstract"]["admission_type"] is None


def test_the_workbench_abstract_form(make_client):
    held = coder_with_item(make_client, **STAY)
    page = held.client.get(f"/work/{held.item_id}")
    assert 'id="abstract-form"' in page.text
    assert "20 Expired" in page.text
    r = held.client.put(
        f"/api/v1/work/{held.item_id}/abstract", json={"attending_npi": "1234567893"}
    )
    assert r.status_code == 200
    r = held.client.post(
        f"/work/{held.item_id}/abstract",
        data={
            "csrf_token": held.client.headers["X-CSRF-Token"],
            "admission_type": "3",
            "admission_source": "1",
            "discharge_status": "20",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    item = held.client.get(f"/api/v1/work/{held.item_id}").json()
    assert item["abstract"]["discharge_status"] == "20"
    assert item["abstract"]["attending_npi"] == "1234567893"  # kept
    page = held.client.get(f"/work/{held.item_id}")
    assert '<option value="20" selected>' in page.text


def test_outpatient_workbench_has_no_abstract_form(make_client):
    held = coder_with_item(make_client)
    assert 'id="abstract-form"' not in held.client.get(f"/work/{held.item_id}").text


def test_the_workbench_submit_shows_the_missing_discharge_status(make_client):
    held = coder_with_item(make_client, **STAY)
    r = held.client.post(
        f"/work/{held.item_id}/submit",
        data={
            "csrf_token": held.client.headers["X-CSRF-Token"],
            "dx_code": ["I50.23"],
            "dx_poa": ["Y"],
        },
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200, r.text
    assert "discharge status" in r.text
