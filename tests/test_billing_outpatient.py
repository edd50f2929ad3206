"""Hospital outpatient claims (issue 17 / 15): a hospital's outpatient visit goes out on an
837I with type of bill 013x, each line its revenue code, HCPCS/CPT, units, charge and date,
no admission date, DRG or POA; an office's on an 837P. NCCI PTP and MUE edits follow the
claim type: practitioner tables for an 837P, hospital outpatient tables for an outpatient
837I, none for an inpatient stay."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from server.billing import kind, x12
from server.config import Settings, get_settings
from server.db import get_engine
from server.edits import files
from server.edits import service as edits_service
from tests.support.billing import sample_claim, segments
from tests.support.coding import coder_with_item, pyx12_accepts

DATA = Path(__file__).parent / "data"
HOSPITAL = Settings(billing_facility_setting="hospital")
OFFICE = Settings(billing_facility_setting="office")


def _outpatient(**changes: Any) -> x12.ClaimData:
    claim = sample_claim(
        work_item_id=77,
        outpatient_institutional=True,
        patient_first="Maria",
        start=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        end=datetime(2026, 11, 2, 11, 0, tzinfo=UTC),
        diagnoses=[("E11.9", None), ("I10", None)],
        lines=[
            x12.Line("CPT", "99213", ["25"], 1, [1, 2], 18500, revenue_code="0510"),
            x12.Line("CPT", "36415", [], 1, [1], 2800, revenue_code="0300"),
            x12.Line("HCPCS", "J1100", [], 4, [1], 3600, revenue_code="0636"),
        ],
    )
    return dataclasses.replace(claim, **changes)


def test_a_hospital_outpatient_claim_is_an_837i_013x_that_passes_pyx12():
    text = x12.build_837(_outpatient(), HOSPITAL)
    ok, log = pyx12_accepts(text)
    assert ok, log
    assert "005010X223A2" in text
    assert "005010X222A1" not in text
    assert "CLM*CD77*249***13:A:1**A*Y*Y~" in text  # type of bill 013x, total = the lines
    assert "DTP*434*RD8*20261102-20261102~" in text  # statement dates
    assert not [s for s in segments(text, "DTP") if s[1] == "435"]  # no admission date
    assert "CL1*9**01~" in text  # no point of origin unless abstracted
    assert "HI*ABK:E119~" in text
    assert "HI*ABF:I10~" in text
    assert not [s for s in segments(text, "HI") if s[1].startswith(("DR:", "ABJ:", "BBR:"))]
    assert [s[1:] for s in segments(text, "SV2")] == [
        ["0510", "HC:99213:25", "185", "UN", "1"],
        ["0300", "HC:36415", "28", "UN", "1"],
        ["0636", "HC:J1100", "36", "UN", "4"],
    ]
    assert [s[1:] for s in segments(text, "DTP") if s[1] == "472"] == [
        ["472", "D8", "20261102"]
    ] * 3
    assert not segments(text, "SV1")


def test_the_abstract_fills_cl1_on_an_outpatient_837i():
    claim = _outpatient(admission_type="3", admission_source="1", discharge_status="01")
    text = x12.build_837(claim, HOSPITAL)
    assert pyx12_accepts(text)[0]
    assert "CL1*3*1*01~" in text


def test_a_corrected_outpatient_837i_is_a_replacement():
    text = x12.build_837(
        _outpatient(frequency_code="7", original_claim_number="2026112700009"), HOSPITAL
    )
    ok, log = pyx12_accepts(text)
    assert ok, log
    assert "*13:A:7*" in text
    assert "REF*F8*2026112700009~" in text


def test_an_outpatient_837i_line_without_revenue_code_or_hcpcs_is_a_claim_edit():
    claim = _outpatient(
        lines=[
            x12.Line("CPT", "99213", [], 1, [1], 18500, revenue_code=""),
            x12.Line("PCS", "0DTJ4ZZ", [], 1, [1], 50000, revenue_code="0360"),
        ]
    )
    found = {(p.code, p.loc[-2]) for p in x12.problems(claim)}
    assert ("claim-revenue-code", "1") in found
    assert ("claim-outpatient-hcpcs", "2") in found
    with pytest.raises(x12.ClaimNotBuildable):
        x12.build_837(claim, HOSPITAL)


def test_fhir_and_csv_say_institutional_without_place_of_service():
    resource = x12.build_fhir(_outpatient(), HOSPITAL)
    assert resource["type"]["coding"][0]["code"] == "institutional"
    assert all("locationCodeableConcept" not in i for i in resource["item"])
    assert [i["revenue"]["coding"][0]["code"] for i in resource["item"]] == [
        "0510",
        "0300",
        "0636",
    ]
    assert round(resource["total"]["value"] * 100) == 24900
    csv_text = x12.build_csv(_outpatient(), HOSPITAL)
    assert ",837I," in csv_text
    assert ",837P," not in csv_text


def test_a_batch_groups_outpatient_837i_with_the_inpatient_claims():
    office = dataclasses.replace(
        _outpatient(work_item_id=78),
        outpatient_institutional=False,
        lines=[x12.Line("CPT", "99213", [], 1, [1], 18500)],
    )
    text = x12.build_interchange([office, _outpatient()], HOSPITAL, controls=x12.Controls(5, 5, 1))
    ok, log = pyx12_accepts(text)
    assert ok, log
    assert [s[8] for s in segments(text, "GS")] == ["005010X222A1", "005010X223A2"]


@pytest.mark.parametrize(
    ("klass", "setting", "claim_type", "tables"),
    [
        ("outpatient", "hospital", "837I", "hospital"),
        ("outpatient", "office", "837P", "practitioner"),
        ("professional", "hospital", "837P", "practitioner"),
        ("emergency", "hospital", "837P", "practitioner"),
        ("inpatient", "office", "837I", None),
    ],
)
def test_claim_type_and_edit_tables_follow_the_facility(klass, setting, claim_type, tables):
    settings = Settings(billing_facility_setting=setting)
    assert kind.claim_type(settings, klass, "Anywhere") == claim_type
    assert kind.edit_setting(settings, klass, "Anywhere") == tables


def test_per_facility_setting_wins():
    settings = Settings(
        billing_facility_setting="office",
        billing_facility_settings={"Riverside General Hospital": "hospital"},
    )
    assert kind.claim_type(settings, "outpatient", "RIVERSIDE GENERAL HOSPITAL") == "837I"
    assert kind.claim_type(settings, "outpatient", "Hilltown Clinic") == "837P"


def test_the_coders_edits_use_the_hospital_tables_on_a_hospital_outpatient_visit(
    make_client, monkeypatch
):
    """The same pair (96372 with 99211) is bundled in the hospital outpatient table only: a
    visit at the hospital is refused, the same visit at an office is not."""
    monkeypatch.setenv(
        "CHARTDESK_BILLING_FACILITY_SETTINGS", '{"Riverside General Hospital": "hospital"}'
    )
    get_settings.cache_clear()
    with Session(get_engine()) as s:
        files.load(s, kind="ncci-ptp", setting="hospital", path=DATA / "ccioph-v320r0-f1.txt")
        files.load(s, kind="ncci-ptp", setting="practitioner", path=DATA / "ccipra-v320r0-f1.txt")
        s.commit()
    body = {
        "diagnoses": [{"code": "E11.9"}],
        "procedures": [
            {"code": "96372", "system": "CPT", "dx_pointers": [1]},
            {"code": "99211", "system": "CPT", "dx_pointers": [1]},
        ],
    }
    hospital = coder_with_item(make_client, "coder1", facility="Riverside General Hospital")
    got = hospital.client.put(f"/api/v1/work/{hospital.item_id}/codes", json=body).json()
    assert [e["code"] for e in got["errors"]] == ["ncci-ptp"], got
    assert "NCCI PTP hospital edit" in got["errors"][0]["msg"]
    office = coder_with_item(make_client, "coder2", facility="Hilltown Family Practice")
    got = office.client.put(f"/api/v1/work/{office.item_id}/codes", json=body).json()
    assert got["errors"] == [], got
    with Session(get_engine()) as s:
        from server.models import WorkItem

        item = s.get(WorkItem, hospital.item_id)
        assert item is not None
        assert edits_service.context_for(s, item=item).setting == "hospital"
