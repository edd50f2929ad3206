"""Where a claim's payer, member id and place of service come from: the encounter's Coverage
(FHIR Coverage, its payor reference or Organization; HL7 IN1) and the encounter class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.billing import service
from server.config import Settings
from server.records import fhir
from server.records.demo import with_coverage

SYNTHEA = Path("/work/shared/fixtures/synthea")


def _bundle(*coverage_and_more: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:p1",
                "resource": {
                    "resourceType": "Patient",
                    "id": "p1",
                    "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "MRN1"}],
                    "name": [{"family": "Lesch", "given": ["Sandee"]}],
                },
            },
            {
                "fullUrl": "urn:uuid:e1",
                "resource": {
                    "resourceType": "Encounter",
                    "id": "e1",
                    "class": {"code": "EMER"},
                    "subject": {"reference": "urn:uuid:p1"},
                    "period": {"start": "2025-02-01T10:00:00Z", "end": "2025-02-01T12:00:00Z"},
                },
            },
            *(
                {"fullUrl": f"urn:uuid:x{n}", "resource": r}
                for n, r in enumerate(coverage_and_more)
            ),
        ],
    }


def test_coverage_gives_member_id_and_payer_id_from_the_payor_or_its_organization():
    direct = {
        "resourceType": "Coverage",
        "subscriberId": "W123456789",
        "beneficiary": {"reference": "urn:uuid:p1"},
        "payor": [{"display": "Aetna", "identifier": {"value": "60054"}}],
    }
    (enc,) = fhir.parse_bundle(_bundle(direct))
    assert enc.payer is not None
    assert (enc.payer.name, enc.payer.member_id, enc.payer.payer_id) == (
        "Aetna",
        "W123456789",
        "60054",
    )
    org = {
        "resourceType": "Organization",
        "id": "o1",
        "name": "Humana",
        "identifier": [{"system": "urn:payer-id", "value": "61101"}],
    }
    by_org = {**direct, "payor": [{"reference": "Organization/o1"}]}
    (enc,) = fhir.parse_bundle(_bundle(org, by_org))
    assert enc.payer is not None
    assert (enc.payer.name, enc.payer.payer_id) == ("Humana", "61101")


def test_a_synthea_claim_naming_its_payer_takes_that_payers_coverage():
    bundle = json.loads((SYNTHEA / "sandee_ad655588.json").read_text())
    plain = fhir.parse_bundle(bundle)
    assert all(e.payer and e.payer.member_id is None for e in plain)  # Synthea sends none
    covered = fhir.parse_bundle(with_coverage(bundle))
    assert {(e.payer.name, e.payer.payer_id) for e in covered if e.payer} == {
        ("UnitedHealthcare", "87726")
    }
    assert all(e.payer and e.payer.member_id for e in covered)


@pytest.mark.parametrize(
    ("klass", "setting", "pos"),
    [
        ("outpatient", "hospital", "22"),
        ("outpatient", "office", "11"),
        ("emergency", "hospital", "23"),
        ("emergency", "office", "23"),
        ("inpatient", "office", "21"),
    ],
)
def test_place_of_service_from_the_class_and_the_facility(klass, setting, pos):
    assert service.place_of_service(Settings(billing_facility_setting=setting), klass) == pos


def test_place_of_service_per_facility():
    settings = Settings(
        billing_facility_setting="hospital",
        billing_facility_settings={"Hilltown Community Health Centers Inc": "office"},
    )
    assert (
        service.place_of_service(settings, "outpatient", "HILLTOWN COMMUNITY HEALTH CENTERS INC")
        == "11"
    )
    assert service.place_of_service(settings, "outpatient", "WINCHESTER HOSPITAL") == "22"
    assert service.place_of_service(settings, "outpatient", None) == "22"


def test_payer_id_from_coverage_then_by_name_then_the_catch_all():
    named = Settings(billing_payer_ids={"Blue Cross Blue Shield": "BCBSMA"})
    assert service.payer_id(named, "Aetna", "60054") == "60054"
    assert service.payer_id(named, "blue cross blue shield", None) == "BCBSMA"
    assert service.payer_id(named, "Aetna", None) is None
    assert service.payer_id(Settings(billing_payer_id="ANY01"), "Aetna", None) == "ANY01"
