"""The rest of the inpatient abstract (issue 16): operating physician, the date of each
ICD-10-PCS procedure (within the stay), a newborn's birth weight and the admission hour;
from the FHIR Encounter, on the workbench form, on the 837I and in the FHIR Claim."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from server.billing import x12
from server.config import Settings
from tests.support.billing import sample_claim
from tests.support.coding import coder_with_item, pyx12_accepts, signed_in
from tests.support.factories import make_token, make_user, sign_in

SYNTHEA = Path("/work/shared/fixtures/synthea")
STAY = {
    "class": "inpatient",
    "start": datetime(2026, 1, 10, 8, 0, tzinfo=UTC),
    "end": datetime(2026, 1, 14, 11, 0, tzinfo=UTC),
}
OPERATING = "1245319599"  # a valid NPI (check digit)


def _put(held: Any, body: dict[str, Any]) -> Any:
    return held.client.put(f"/api/v1/work/{held.item_id}/abstract", json=body)


def _abstract(held: Any) -> dict[str, Any]:
    return held.client.get(f"/api/v1/work/{held.item_id}").json()["abstract"]


# ---------------------------------------------------------------- API: each field


def test_the_new_fields_are_set_and_answered(make_client):
    held = coder_with_item(make_client, **STAY)
    body = {
        "admission_hour": 0,
        "operating_npi": OPERATING,
        "procedure_dates": {"02703zz": "2026-01-10", "0DTJ4ZZ": "2026-01-14"},
        "birth_weight_grams": 3250,
    }
    r = _put(held, body)
    assert r.status_code == 200, r.text
    got = _abstract(held)
    assert got["admission_hour"] == 0
    assert got["operating_npi"] == OPERATING
    # The first and the last day of the stay are in it; codes are kept upper case.
    assert got["procedure_dates"] == {"02703ZZ": "2026-01-10", "0DTJ4ZZ": "2026-01-14"}
    assert got["birth_weight_grams"] == 3250


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"operating_npi": "12345"}, ["body", "operating_npi"]),
        ({"operating_npi": "1245319598"}, ["body", "operating_npi"]),  # check digit wrong
        ({"attending_npi": "1245319598"}, ["body", "attending_npi"]),
        ({"birth_weight_grams": 50}, ["body", "birth_weight_grams"]),
        ({"birth_weight_grams": 10000}, ["body", "birth_weight_grams"]),
        ({"admission_hour": "24"}, ["body", "admission_hour"]),
        ({"procedure_dates": {"02703ZZ": "2026-01-09"}}, ["body", "procedure_dates", "02703ZZ"]),
        ({"procedure_dates": {"02703ZZ": "2026-01-15"}}, ["body", "procedure_dates", "02703ZZ"]),
        ({"procedure_dates": {"02703ZZ": "2026-02-30"}}, ["body", "procedure_dates", "02703ZZ"]),
    ],
)
def test_a_bad_value_is_422_at_the_field_and_nothing_changes(make_client, body, loc):
    held = coder_with_item(make_client, **STAY)
    assert _put(held, {"discharge_status": "01"}).status_code == 200
    r = _put(held, {"discharge_status": "20", **body})
    assert r.status_code == 422, r.text
    locs = [d["loc"] for d in r.json()["error"]["details"]]
    assert loc in locs, locs
    assert _abstract(held)["discharge_status"] == "01"


def test_an_npi_saved_before_the_check_digit_rule_still_opens(make_client):
    """Abstracts stored before the rule keep opening (no 500); saving asks for a valid one."""
    from sqlmodel import Session

    from server.db import get_engine
    from server.models import ItemAbstract
    from tests.support.coding import item_key

    held = coder_with_item(make_client, **STAY)
    with Session(get_engine()) as s:
        key = item_key(s, held.item_id)
        value = {"attending_npi": "1234567890", "discharge_status": "01"}
        sealed = key.seal(table="item_abstract", row_id=held.item_id, field="abstract", value=value)
        s.add(ItemAbstract(work_item_id=held.item_id, sealed_abstract=sealed))
        s.commit()
    assert _abstract(held)["attending_npi"] == "1234567890"
    assert 'value="1234567890"' in held.client.get(f"/work/{held.item_id}").text
    r = _put(held, {"attending_npi": "1234567890"})
    assert r.status_code == 422
    assert ["body", "attending_npi"] in [d["loc"] for d in r.json()["error"]["details"]]


def test_a_procedure_date_key_must_be_a_pcs_code(make_client):
    held = coder_with_item(make_client, **STAY)
    r = _put(held, {"procedure_dates": {"99213": "2026-01-11"}})
    assert r.status_code == 422
    assert any(d["loc"][:2] == ["body", "procedure_dates"] for d in r.json()["error"]["details"])


def test_a_newborn_stay_is_not_submitted_without_a_birth_weight(make_client):
    held = coder_with_item(make_client, **STAY)
    r = held.client.put(
        f"/api/v1/work/{held.item_id}/codes",
        json={"diagnoses": [{"code": "I50.23", "poa": "Y"}], "procedures": []},
    )
    assert r.status_code == 200
    assert _put(held, {"discharge_status": "01", "admission_type": "4"}).status_code == 200
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.status_code == 422, r.text
    problems = [d for d in r.json()["error"]["details"] if d.get("code") == "abstract-required"]
    assert [p["loc"] for p in problems] == [["abstract", "birth_weight_grams"]]
    weighed = {"discharge_status": "01", "admission_type": "4", "birth_weight_grams": 3100}
    assert _put(held, weighed).status_code == 200
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.status_code == 200, r.text


def test_an_adult_elective_stay_needs_no_birth_weight(make_client):
    held = coder_with_item(make_client, **STAY)
    held.client.put(
        f"/api/v1/work/{held.item_id}/codes",
        json={"diagnoses": [{"code": "I50.23", "poa": "Y"}], "procedures": []},
    )
    assert _put(held, {"discharge_status": "01", "admission_type": "3"}).status_code == 200
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200


def test_when_a_birth_weight_is_needed():
    from server.coding.abstract import Abstract, birth_weight_needed

    adult = Abstract(admission_type="3")
    assert not birth_weight_needed(adult, age=45, drg="291")
    assert birth_weight_needed(adult, age=0, drg=None)  # aged 0 at admission
    assert birth_weight_needed(adult, age=None, drg="795")  # a newborn MS-DRG
    assert birth_weight_needed(Abstract(admission_type="4"), age=None, drg=None)


# ---------------------------------------------------------------- FHIR ingest


def _rodney() -> dict[str, Any]:
    from tests.support.records import load

    return load(SYNTHEA / "rodney_7e869f79.json")


def test_fhir_ingest_takes_the_hour_the_attending_and_pcs_dates_from_synthea():
    """Rodney's inpatient stay (Synthea): admitted at 20:28, his practitioner the primary
    performer (PPRF); a PCS Procedure added to the stay gives its performed date, a
    secondary performer (SPRF) is the operating physician, ATND wins over PPRF."""
    from server.records import fhir

    bundle = _rodney()
    parsed = [
        e for e in fhir.parse_bundle(copy.deepcopy(bundle)) if e.encounter_class == "inpatient"
    ]
    assert len(parsed) == 1
    admission = parsed[0].admission
    assert admission is not None
    assert admission.admission_hour == 20
    assert admission.attending_npi == "9999901090"
    assert admission.operating_npi is None
    assert admission.procedure_dates == {}  # Synthea codes procedures in SNOMED CT
    outpatient = [e for e in fhir.parse_bundle(copy.deepcopy(bundle)) if e.admission]
    assert [e.encounter_class for e in outpatient] == ["inpatient"]

    encounter = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Encounter" and e["resource"]["class"]["code"] == "IMP"
    )
    pprf = encounter["participant"][0]
    encounter["participant"] = [
        {**pprf, "type": [{"coding": [{"code": "SPRF"}]}]},
        {
            "type": [{"coding": [{"code": "ATND"}]}],
            "individual": {
                "reference": f"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|{OPERATING}",
                "display": "Dr. Ada Lovelace",
            },
        },
    ]
    pcs = "http://www.cms.gov/Medicare/Coding/ICD10"
    for code, when in (("02703ZZ", {"performedDateTime": "2016-09-21T09:10:00+00:00"}),):
        bundle["entry"].append(
            {
                "fullUrl": "urn:uuid:pcs-1",
                "resource": {
                    "resourceType": "Procedure",
                    "status": "completed",
                    "subject": encounter["subject"],
                    "encounter": {"reference": f"urn:uuid:{encounter['id']}"},
                    "code": {"coding": [{"system": pcs, "code": code}]},
                    **when,
                },
                "request": {"method": "POST", "url": "Procedure"},
            }
        )
    parsed = [e for e in fhir.parse_bundle(bundle) if e.encounter_class == "inpatient"]
    admission = parsed[0].admission
    assert admission is not None
    assert admission.attending_npi == OPERATING  # ATND
    assert admission.operating_npi == "9999901090"  # SPRF
    assert admission.procedure_dates == {"02703ZZ": date(2016, 9, 21)}


def test_synthea_inpatient_ingest_prefills_the_abstract_and_the_837i_names_the_attending(
    make_client, monkeypatch
):
    from sqlmodel import Session

    from server.db import get_engine
    from server.models import Encounter, WorkItem

    ingest = make_client()
    ingest.headers["Authorization"] = f"Bearer {make_token('ehr', 'ingest')}"
    r = ingest.post(
        "/api/v1/fhir",
        content=(SYNTHEA / "rodney_7e869f79.json").read_bytes(),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert r.status_code == 200, r.text
    with Session(get_engine()) as s:
        target = next(
            int(i["id"])
            for i in r.json()["work_items"]
            if (item := s.get(WorkItem, int(i["id"]))) is not None
            and (enc := s.get(Encounter, item.encounter_id)) is not None
            and enc.encounter_class == "inpatient"
        )
    coder = make_client()
    sign_in(coder, make_user("coder1", "coder", queues=["default"]))
    sup = signed_in(make_client, "sup1", "supervisor")
    assert sup.post(f"/api/v1/work/{target}/assign", json={"username": "coder1"}).status_code == 200
    abstract = coder.get(f"/api/v1/work/{target}").json()["abstract"]
    assert abstract["admission_hour"] == 20
    assert abstract["attending_npi"] == "9999901090"
    codes = {
        "diagnoses": [{"code": "I50.23", "poa": "Y"}],
        "procedures": [{"code": "02703ZZ", "system": "PCS"}],
    }
    assert coder.put(f"/api/v1/work/{target}/codes", json=codes).status_code == 200
    r = coder.put(
        f"/api/v1/work/{target}/abstract",
        json={
            **abstract,
            "discharge_status": "01",
            "operating_npi": "9999901090",
            "procedure_dates": {"02703ZZ": "2016-09-21"},
        },
    )
    assert r.status_code == 200, r.text
    r = coder.post(f"/api/v1/work/{target}/submit")
    assert r.status_code == 200, r.text
    # Synthea's Coverage has no payer or member id and nothing is priced: the claim edits a
    # payer would deny it for (and pyx12 would refuse) are not what this test is about.
    monkeypatch.setattr(x12, "problems", lambda claim: [])
    biller = signed_in(make_client, "biller1", "biller")
    exported = biller.get(f"/api/v1/billing/{target}/claim", params={"format": "x12"})
    assert exported.status_code == 200, exported.text
    text = exported.text  # (pyx12 on the 837I's new segments: the tests below)
    assert "DTP*435*DT*201609202000~" in text
    # The source named the practitioner: attending (2310A) and operating (2310B).
    assert "NM1*71*1*SCHULTZ619*ARMAND155****XX*9999901090~" in text
    assert "NM1*72*1*SCHULTZ619*ARMAND155****XX*9999901090~" in text
    assert "HI*BBR:02703ZZ:D8:20160921~" in text


# ---------------------------------------------------------------- 837I and FHIR Claim


def _claim(**changes: Any) -> x12.ClaimData:
    claim = sample_claim(
        inpatient=True,
        patient_first="Baby Girl",
        birth_date="2026-11-01",
        diagnoses=[("Z38.00", "Y"), ("P07.37", "Y")],
        lines=[
            x12.Line("PCS", "0VTTXZZ", [], 1, [], 90000, revenue_code="0360"),
            x12.Line("PCS", "3E0234Z", [], 1, [], 20000, revenue_code="0360"),
            x12.Line("HCPCS", "J1100", [], 2, [1], 5000, revenue_code="0636"),
        ],
    )
    return dataclasses.replace(claim, **changes)


ABSTRACTED = {
    "admission_type": "4",
    "admission_source": "5",
    "discharge_status": "01",
    "admission_hour": 7,
    "admitting_diagnosis": "Z38.00",
    "drg": "792",
    "drg_version": "44.0",
    "attending": x12.Physician("1245319599", "Nightingale", "Florence"),
    "operating": x12.Physician("1234567893", "Lister", "Joseph"),
    "procedure_dates": {"0VTTXZZ": date(2026, 11, 2), "3E0234Z": date(2026, 11, 3)},
    "birth_weight_grams": 2350,
}


def test_the_837i_carries_the_abstract_and_passes_pyx12():
    text = x12.build_837(_claim(**ABSTRACTED), Settings())
    ok, log = pyx12_accepts(text)
    assert ok, log
    assert "DTP*435*DT*202611010700~" in text  # admission date and hour
    assert "HI*BBR:0VTTXZZ:D8:20261102~\nHI*BBQ:3E0234Z:D8:20261103~" in text
    assert "HI*BE:54:::2350~" in text  # value code 54: birth weight in grams
    assert "HI*DR:792~" in text
    assert "NM1*71*1*NIGHTINGALE*FLORENCE****XX*1245319599~\n" in text
    assert "NM1*72*1*LISTER*JOSEPH****XX*1234567893~\n" in text
    # HI order of the guide: ... DR, other diagnoses, procedures, value codes; then 2310A, B.
    assert text.index("HI*DR") < text.index("HI*ABF") < text.index("HI*BBR") < text.index("HI*BE")
    assert text.index("HI*BE") < text.index("NM1*71") < text.index("NM1*72") < text.index("LX*1")


def test_the_837i_without_the_hour_sends_the_admission_date_only():
    text = x12.build_837(_claim(), Settings())
    ok, log = pyx12_accepts(text)
    assert ok, log
    assert "DTP*435*D8*20261101~" in text
    assert "HI*BBR:0VTTXZZ:D8:20261101~\nHI*BBQ:3E0234Z:D8:20261101~" in text  # admission date
    assert "NM1*72" not in text
    assert "HI*BE" not in text
    assert "NM1*71*1*DEMO*ATTENDING****XX*1245319599~" in text  # the setting's


def test_an_admission_near_midnight_keeps_its_date_and_hour_on_the_sources_clock():
    """Admitted 23:30 at UTC-5 on 1 Nov is 04:30 UTC on 2 Nov: DTP*435 says 1 Nov, 23h."""
    claim = _claim(
        **{**ABSTRACTED, "admission_hour": 23, "admission_date": date(2026, 11, 1)},
        start=datetime(2026, 11, 2, 4, 30, tzinfo=UTC),
    )
    text = x12.build_837(claim, Settings())
    ok, log = pyx12_accepts(text)
    assert ok, log
    assert "DTP*435*DT*202611012300~" in text


def test_the_fhir_claim_puts_the_admission_hour_on_the_sources_date():
    """Admitted 23:30 in New York on 1 Nov, stored as 04:30 UTC on 2 Nov (as the records
    service gives it): the FHIR period starts 04:00 UTC on 2 Nov (23h on the source's date),
    not on 2 Nov at 23:00 (the UTC date with the local hour)."""
    claim = _claim(
        **{**ABSTRACTED, "admission_hour": 23, "admission_date": date(2026, 11, 1)},
        start=datetime(2026, 11, 2, 4, 30, tzinfo=UTC),
    )
    info = x12.build_fhir(claim, Settings(audit_timezone="America/New_York"))["supportingInfo"]
    (stay,) = [e for e in info if e["category"]["coding"][0]["code"] == "hospitalized"]
    assert stay["timingPeriod"]["start"] == "2026-11-02T04:00:00+00:00"


def test_json_ingest_keeps_the_admission_date_of_the_sources_clock_for_the_837i(
    make_client, monkeypatch
):
    local = timezone(timedelta(hours=-5))
    held = coder_with_item(
        make_client,
        **{
            **STAY,
            "start": datetime(2026, 1, 10, 23, 30, tzinfo=local),  # 04:30 UTC on the 11th
            "admission": {"admission_hour": 23, "discharge_status": "01"},
        },
    )
    abstract = _abstract(held)
    assert (abstract["admission_date"], abstract["admission_hour"]) == ("2026-01-10", 23)
    codes = {"diagnoses": [{"code": "I50.23", "poa": "Y"}], "procedures": []}
    assert held.client.put(f"/api/v1/work/{held.item_id}/codes", json=codes).status_code == 200
    # The workbench form saves its own fields only: the source's date stays.
    form = {"csrf_token": held.client.headers["X-CSRF-Token"], "admission_hour": "23"}
    held.client.post(f"/work/{held.item_id}/abstract", data=form)
    assert _abstract(held)["admission_date"] == "2026-01-10"
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    monkeypatch.setattr(x12, "problems", lambda claim: [])
    biller = signed_in(make_client, "biller1", "biller")
    text = biller.get(f"/api/v1/billing/{held.item_id}/claim", params={"format": "x12"}).text
    assert "DTP*435*DT*202601102300~" in text


def test_the_fhir_claim_carries_the_drg_and_the_abstract():
    resource = x12.build_fhir(_claim(**ABSTRACTED), Settings())
    package = resource["diagnosis"][0]["packageCode"]["coding"][0]
    assert package["system"] == x12.MS_DRG_SYSTEM
    assert (package["code"], package["version"]) == ("792", "44.0")
    admitting = resource["diagnosis"][-1]
    assert admitting["type"][0]["coding"][0]["code"] == "admitting"
    assert admitting["diagnosisCodeableConcept"]["coding"][0]["code"] == "Z38.00"
    assert [
        (p["procedureCodeableConcept"]["coding"][0]["code"], p["date"])
        for p in resource["procedure"]
    ] == [
        ("0VTTXZZ", "2026-11-02"),
        ("3E0234Z", "2026-11-03"),
    ]
    team = {
        t["role"]["coding"][0]["code"]: t["provider"]["identifier"]["value"]
        for t in resource["careTeam"]
    }
    assert team == {"attending": "1245319599", "operating": "1234567893"}
    info = resource["supportingInfo"]
    by_category: dict[str, list[dict[str, Any]]] = {}
    for entry in info:
        coding = entry["category"]["coding"][0]
        assert coding["system"] == "http://terminology.hl7.org/CodeSystem/claiminformationcategory"
        by_category.setdefault(coding["code"], []).append(entry)
    assert [e["sequence"] for e in info] == list(range(1, len(info) + 1))
    assert by_category["hospitalized"][0]["timingPeriod"]["start"].startswith("2026-11-01T07:00")
    assert by_category["discharge"][0]["code"]["coding"][0]["code"] == "01"
    codes = {e["code"]["coding"][0]["code"]: e for e in by_category["info"]}
    assert set(codes) == {"4", "5", "54"}  # admission type, point of origin, value code 54
    assert codes["54"]["valueQuantity"]["value"] == 2350
    assert codes["54"]["valueQuantity"]["code"] == "g"


def test_an_outpatient_fhir_claim_has_no_abstract():
    claim = dataclasses.replace(
        _claim(), inpatient=False, lines=[x12.Line("CPT", "99213", [], 1, [1], 100)]
    )
    resource = x12.build_fhir(claim, Settings())
    assert "supportingInfo" not in resource
    assert "careTeam" not in resource
    assert "packageCode" not in resource["diagnosis"][0]


# ---------------------------------------------------------------- the workbench form


def _form(held: Any, **fields: Any) -> dict[str, Any]:
    return {"csrf_token": held.client.headers["X-CSRF-Token"], **fields}


def test_the_form_shows_every_field_and_a_date_per_pcs_code(make_client):
    held = coder_with_item(make_client, **STAY)
    codes = {
        "diagnoses": [{"code": "I21.4", "poa": "Y"}],
        "procedures": [{"code": "02703ZZ", "system": "PCS"}],
    }
    assert held.client.put(f"/api/v1/work/{held.item_id}/codes", json=codes).status_code == 200
    page = held.client.get(f"/work/{held.item_id}").text
    assert '<details id="abstract" class="abstract">' in page  # closed: the codes stay in view
    for name in (
        "admission_hour",
        "attending_npi",
        "operating_npi",
        "admitting_diagnosis",
        "birth_weight_grams",
    ):
        assert f'name="{name}"' in page, name
    assert '<input type="hidden" name="pd_code" value="02703ZZ">' in page
    r = held.client.post(
        f"/work/{held.item_id}/abstract",
        data=_form(
            held,
            admission_hour="9",
            attending_npi="1234567893",
            operating_npi=OPERATING,
            admitting_diagnosis="i21.4",
            birth_weight_grams="",
            pd_code=["02703ZZ"],
            pd_date=["2026-01-11"],
        ),
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    got = _abstract(held)
    assert got["admission_hour"] == 9
    assert got["operating_npi"] == OPERATING
    assert got["admitting_diagnosis"] == "I21.4"
    assert got["birth_weight_grams"] is None
    assert got["procedure_dates"] == {"02703ZZ": "2026-01-11"}
    page = held.client.get(f"/work/{held.item_id}").text
    assert 'value="2026-01-11"' in page


def test_a_refused_form_comes_back_at_the_field_with_the_input_kept(make_client):
    held = coder_with_item(make_client, **STAY)
    assert _put(held, {"discharge_status": "01", "operating_npi": OPERATING}).status_code == 200
    r = held.client.post(
        f"/work/{held.item_id}/abstract",
        data=_form(
            held,
            discharge_status="20",
            admission_hour="7",
            operating_npi="1245319598",  # check digit wrong
            admitting_diagnosis="R07.9",
            pd_code=["02703ZZ"],
            pd_date=["2026-01-20"],  # after discharge
        ),
        follow_redirects=False,
    )
    assert r.status_code == 422, r.text
    page = r.text
    assert '<details id="abstract" class="abstract" open>' in page
    assert 'id="abstract-error"' in page
    assert 'name="operating_npi" id="abstract-operating_npi" value="1245319598"' in page
    assert 'aria-describedby="err-operating_npi"' in page
    assert '<option value="20" selected>' in page  # the typed discharge status kept
    assert 'value="R07.9"' in page
    assert 'value="2026-01-20"' in page
    # Nothing saved.
    got = _abstract(held)
    assert (got["discharge_status"], got["operating_npi"]) == ("01", OPERATING)


def test_a_refused_procedure_date_is_shown_at_its_code_in_place_with_htmx(make_client):
    held = coder_with_item(make_client, **STAY)
    r = held.client.post(
        f"/work/{held.item_id}/abstract",
        data=_form(held, pd_code=["02703ZZ"], pd_date=["2026-01-02"]),
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 422  # swapped in place (htmx-config swaps 4xx)
    assert r.text.lstrip().startswith("<details")  # the form alone, not the page
    assert 'aria-describedby="err-procedure_dates.02703ZZ"' in r.text
    assert "outside the stay" in r.text
    assert 'value="2026-01-02"' in r.text
    assert _abstract(held)["procedure_dates"] == {}
    r = held.client.post(
        f"/work/{held.item_id}/abstract",
        data=_form(held, pd_code=["02703ZZ"], pd_date=["2026-01-12"]),
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200, r.text
    assert 'id="abstract-saved"' in r.text
    assert r.headers["HX-Trigger"] == "abstract-saved"  # the code panel regroups the DRG
    assert _abstract(held)["procedure_dates"] == {"02703ZZ": "2026-01-12"}
