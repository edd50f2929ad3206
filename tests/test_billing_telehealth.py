"""Telehealth kept through ingest: FHIR class VR (or the encounter JSON's `modality`) is an
outpatient visit that remembers it was virtual, and its 837P says place of service 02, or 10
when the data says the patient was at home; pyx12 accepts both."""

from __future__ import annotations

import copy

import pytest
from sqlmodel import Session

from server.billing import service
from server.config import Settings
from server.db import get_engine
from server.models import Encounter, WorkItem
from server.records import fhir
from tests.support.coding import pyx12_accepts
from tests.support.factories import make_token
from tests.test_billing_api import _coded
from tests.test_billing_coverage import _bundle


def _virtual(*locations: dict, more: tuple[dict, ...] = ()) -> dict:
    bundle = _bundle(*more)
    enc = bundle["entry"][1]["resource"]
    enc["class"] = {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "VR",
    }
    if locations:
        enc["location"] = list(locations)
    return bundle


def test_fhir_class_vr_is_outpatient_and_telehealth_at_home_when_a_location_says_so():
    (enc,) = fhir.parse_bundle(_virtual())
    assert (enc.encounter_class.value, enc.modality) == ("outpatient", "telehealth")
    home = {"physicalType": {"coding": [{"code": "ho"}]}, "location": {"display": "Home"}}
    (enc,) = fhir.parse_bundle(_virtual(home))
    assert enc.modality is not None
    assert enc.modality.value == "telehealth-home"
    residence = {
        "resourceType": "Location",
        "id": "l1",
        "type": [{"coding": [{"code": "PTRES"}]}],
    }
    by_ref = {"location": {"reference": "urn:uuid:x0"}}
    (enc,) = fhir.parse_bundle(_virtual(by_ref, more=(residence,)))
    assert enc.modality is not None
    assert enc.modality.value == "telehealth-home"
    clinic = copy.deepcopy(residence)
    clinic["type"] = [{"coding": [{"code": "HOSP"}]}]
    (enc,) = fhir.parse_bundle(_virtual(by_ref, more=(clinic,)))
    assert enc.modality is not None
    assert enc.modality.value == "telehealth"
    in_person = _bundle()
    in_person["entry"][1]["resource"]["class"] = {"code": "AMB"}
    (enc,) = fhir.parse_bundle(in_person)
    assert enc.modality is None


def test_a_vr_bundle_posted_keeps_the_telehealth_fact_on_the_encounter(make_client):
    system = make_client()
    system.headers["Authorization"] = f"Bearer {make_token('ehr', 'ingest')}"
    r = system.post("/api/v1/fhir", json=_virtual())
    assert r.status_code == 200, r.text
    item_id = int(r.json()["work_items"][0]["id"])
    with Session(get_engine()) as s:
        item = s.get(WorkItem, item_id)
        assert item is not None
        enc = s.get(Encounter, item.encounter_id)
        assert enc is not None
        assert (enc.encounter_class, enc.modality) == ("outpatient", "telehealth")


@pytest.mark.parametrize(("modality", "pos"), [(None, "22"), ("telehealth", "02")])
def test_place_of_service_of_a_telehealth_visit(modality, pos):
    settings = Settings(billing_facility_setting="hospital")
    assert service.place_of_service(settings, "outpatient", None, modality) == pos
    assert service.place_of_service(settings, "outpatient", None, "telehealth-home") == "10"


@pytest.mark.parametrize(("modality", "pos"), [("telehealth", "02"), ("telehealth-home", "10")])
def test_the_837p_of_a_telehealth_visit_says_02_or_10_and_pyx12_accepts_it(
    make_client, modality, pos
):
    from tests.support.coding import coder_with_item

    if modality == "telehealth-home":  # the coder sees how the visit took place
        seen = coder_with_item(make_client, "coder2", modality=modality)
        page = seen.client.get(f"/work/{seen.item_id}")
        assert 'data-modality="telehealth-home"' in page.text
        assert "patient at home (POS 10)" in page.text
        assert (
            seen.client.get(f"/api/v1/work/{seen.item_id}").json()["encounter"]["modality"]
            == modality
        )
    held = _coded(make_client, "coder1", modality=modality)
    system = make_client()
    system.headers["Authorization"] = f"Bearer {make_token('billing-system', 'billing')}"
    x = system.get(f"/api/v1/billing/{held.item_id}/claim", params={"format": "x12"})
    assert x.status_code == 200, x.text
    clm = next(s for s in x.text.split("~\n") if s.startswith("CLM*"))
    assert clm.split("*")[5] == f"{pos}:B:1"
    ok, log = pyx12_accepts(x.text)
    assert ok, log
