"""837P and 837I pass pyx12's validator for their implementation guides; broken ones fail."""

from __future__ import annotations

import csv
import io

import pytest

from server.billing import x12
from server.config import Settings
from tests.support.billing import sample_claim
from tests.support.coding import pyx12_accepts


def _claim(inpatient: bool) -> x12.ClaimData:
    lines = (
        [
            x12.Line("PCS", "0DTJ4ZZ", [], 1, [], 120000, revenue_code="0360"),
            x12.Line("HCPCS", "J1100", [], 2, [1], 5000, revenue_code="0636"),
        ]
        if inpatient
        else [
            x12.Line("CPT", "99213", ["25"], 1, [1, 2], 12500),
            x12.Line("HCPCS", "J1100", [], 2, [1], 1800),
        ]
    )
    return sample_claim(
        inpatient=inpatient,
        diagnoses=[("E11.9", "Y"), ("I10", "N"), ("J45.909", "U")],
        lines=lines,
    )


def test_837p_passes_pyx12():
    text = x12.build_837(_claim(False), Settings())
    ok, log = pyx12_accepts(text)
    assert ok, log
    assert "005010X222A1" in text
    assert "HI*ABK:E119*ABF:I10*ABF:J45909~" in text
    assert "SV1*HC:99213:25*125*UN*1***1:2~" in text
    assert "CLM*CD42*143***11:B:1*Y*A*Y*Y~" in text
    assert "NM1*82*1*DEMO*ATTENDING****XX*1245319599~" in text  # rendering provider


def test_837i_passes_pyx12():
    text = x12.build_837(_claim(True), Settings())
    ok, log = pyx12_accepts(text)
    assert ok, log
    assert "005010X223A2" in text
    assert "HI*ABK:E119:::::::Y~" in text  # principal diagnosis with POA
    assert "HI*BBR:0DTJ4ZZ:D8:20261101~" in text  # principal procedure (PCS)
    assert "CL1*9*9*01~" in text  # not abstracted: type and source unknown
    assert "*ABJ:" not in text
    assert "*DR:" not in text


def test_837i_carries_the_abstract_and_the_drg():
    import dataclasses

    claim = dataclasses.replace(
        _claim(True),
        admission_type="1",
        admission_source="7",
        discharge_status="20",
        admitting_diagnosis="R07.9",
        drg="637",
    )
    text = x12.build_837(claim, Settings())
    ok, log = pyx12_accepts(text)
    assert ok, log
    assert "CL1*1*7*20~" in text
    assert "HI*ABK:E119:::::::Y~\nHI*ABJ:R079~\nHI*DR:637~\nHI*ABF:" in text


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda t: t.replace("SE*27*0001", "SE*26*0001"), id="wrong SE count"),
        pytest.param(
            lambda t: "\n".join(s for s in t.split("\n") if not s.startswith("CLM*")), id="no CLM"
        ),
        pytest.param(lambda t: t.replace("DMG*D8*19610314", "DMG*D8*19611399"), id="bad date"),
    ],
)
def test_a_broken_837p_fails_pyx12(breakage):
    text = x12.build_837(_claim(False), Settings())
    assert "SE*27*0001" in text
    broken = breakage(text)
    assert broken != text
    ok, _ = pyx12_accepts(broken)
    assert not ok


def test_npi_check_digit():
    assert x12.npi_ok("1234567893")
    assert x12.npi_ok(Settings().billing_provider_npi)
    assert x12.npi_ok(Settings().billing_attending_npi)
    assert not x12.npi_ok("1234567890")
    assert not x12.npi_ok("123456789")


def test_separators_in_data_cannot_break_segments():
    claim = _claim(False)
    claim.patient_last = "O*Brien~ISA"
    claim.patient_first = "Peña José"
    claim.address_line = "1 Main: Apt ^2"
    text = x12.build_837(claim, Settings())
    ok, log = pyx12_accepts(text)
    assert ok, log
    assert "NM1*IL*1*O BRIEN ISA*PENA JOSE*" in text


def test_fhir_claim_and_csv():
    resource = x12.build_fhir(_claim(True), Settings())
    assert resource["resourceType"] == "Claim"
    assert resource["type"]["coding"][0]["code"] == "institutional"
    assert [d["diagnosisCodeableConcept"]["coding"][0]["code"] for d in resource["diagnosis"]] == [
        "E11.9",
        "I10",
        "J45.909",
    ]
    assert resource["diagnosis"][0]["onAdmission"]["coding"][0]["code"] == "Y"
    assert resource["procedure"][0]["procedureCodeableConcept"]["coding"][0]["code"] == "0DTJ4ZZ"
    assert resource["provider"]["identifier"]["value"] == "1234567893"
    claim = _claim(False)
    claim.patient_last = "=HYPERLINK(1)"
    claim.patient_first = "\tcmd"
    claim.member_id = "\r+1"
    rows = list(csv.DictReader(io.StringIO(x12.build_csv(claim, Settings()))))
    assert [r["code"] for r in rows] == ["E11.9", "I10", "J45.909", "99213", "J1100"]
    assert rows[0]["patient_last"] == "'=HYPERLINK(1)"
    assert rows[0]["patient_first"] == "'\tcmd"
    assert rows[0]["member_id"] == "'\r+1"


def test_the_issue_17_stay_bills_its_pcs_line_on_every_format():
    # An inpatient stay with a PCS line charged 1,200.00 used to say CLM*CD2*0 and SV2*0100**0.
    claim = _claim(True)
    claim.lines = [x12.Line("PCS", "0DTJ4ZZ", [], 1, [], 120000, revenue_code="0360")]
    text = x12.build_837(claim, Settings())
    ok, log = pyx12_accepts(text)
    assert ok, log
    assert "CLM*CD42*1200***11:A:1" in text
    assert "SV2*0360**1200*UN*1~" in text
    assert x12.build_fhir(claim, Settings())["total"]["value"] == 1200.0
    rows = list(csv.DictReader(io.StringIO(x12.build_csv(claim, Settings()))))
    assert {r["claim_total"] for r in rows} == {"1200.00"}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"address_line": None}, "claim-address"),
        ({"postal_code": "00000"}, "claim-address"),
        ({"state": "Narnia"}, "claim-address"),
        ({"member_id": None}, "claim-member-id"),
        ({"payer_id": ""}, "claim-payer-id"),
        ({"lines": []}, "claim-zero-total"),
    ],
)
def test_a_claim_that_cannot_be_built_truthfully_is_never_written(change, code):
    import dataclasses

    claim = dataclasses.replace(_claim(False), **change)
    assert code in [p.code for p in x12.problems(claim)]
    with pytest.raises(x12.ClaimNotBuildable):
        x12.build_837(claim, Settings())


def test_a_state_by_name_is_sent_as_its_code():
    claim = _claim(False)
    claim.state = "Massachusetts"
    assert "N4*AMHERST*MA*01002~" in x12.build_837(claim, Settings())


@pytest.mark.parametrize("inpatient", [False, True])
def test_a_corrected_claim_is_a_replacement_of_the_payers_claim(inpatient):
    import dataclasses

    claim = dataclasses.replace(
        _claim(inpatient), frequency_code="7", original_claim_number="2026112700001"
    )
    text = x12.build_837(claim, Settings())
    ok, log = pyx12_accepts(text)
    assert ok, log
    segments = text.split("~\n")
    clm = next(s for s in segments if s.startswith("CLM*"))
    assert clm.split("*")[5] == ("11:A:7" if inpatient else "11:B:7")
    ref = segments.index("REF*F8*2026112700001")
    assert segments[ref + 1].startswith("HI*ABK:")  # in loop 2300, before the diagnoses
    original = x12.build_837(_claim(inpatient), Settings())
    assert "REF*F8" not in original
    assert ":1*" in next(s for s in original.split("~\n") if s.startswith("CLM*"))
