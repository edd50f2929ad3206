"""Routing rules: ordered, matched on facility/class/service type/payer class; default otherwise."""

from __future__ import annotations

import pytest

from tests.support.factories import encounter_data, make_token, make_user, sign_in
from tests.support.queue import ensure_queue


@pytest.fixture
def ingest(make_client):
    client = make_client()
    client.headers["Authorization"] = f"Bearer {make_token('interface-engine', 'ingest')}"
    return client


@pytest.fixture
def boss(make_client):
    client = make_client()
    sign_in(client, make_user("boss", "supervisor"))
    return client


def _send(ingest, **overrides) -> dict:
    data = encounter_data(**overrides).model_dump(mode="json", by_alias=True)
    r = ingest.post("/api/v1/encounters", json=data)
    assert r.status_code == 200, r.text
    return r.json()["work_items"][0]


def _item(boss, item_id: str) -> dict:
    r = boss.get("/api/v1/work", params={"limit": 500})
    return next(i for i in r.json()["items"] if str(i["id"]) == item_id)


def test_rules_pick_queue_and_priority_in_order(ingest, boss):
    for name in ("inpatient", "er", "medicare", "riverside"):
        ensure_queue(name)
    rules = [
        {"position": 10, "encounter_class": "inpatient", "queue": "inpatient", "priority": 5},
        {"position": 20, "encounter_class": "emergency", "queue": "er", "priority": 3},
        # Later and broader: inpatient encounters never reach it.
        {"position": 30, "payer_class": "medicare", "queue": "medicare", "priority": 1},
        {"position": 40, "facility": "riverside general hospital", "queue": "riverside"},
        {"position": 5, "service_type": "X-OFF", "queue": "er", "is_active": False},
    ]
    for rule in rules:
        r = boss.post("/api/v1/routing-rules", json=rule)
        assert r.status_code == 201, r.text
    listed = boss.get("/api/v1/routing-rules").json()["items"]
    assert [r["position"] for r in listed] == [5, 10, 20, 30, 40]

    inpatient = _send(ingest, **{"class": "inpatient", "payer_class": "medicare"})
    assert inpatient["queue"] == "inpatient"
    assert _item(boss, inpatient["id"])["priority"] == 5
    assert _send(ingest, **{"class": "emergency"})["queue"] == "er"
    medicare = _send(ingest, payer_class="Medicare")  # case-insensitive
    assert medicare["queue"] == "medicare"
    assert _item(boss, medicare["id"])["priority"] == 1
    assert _send(ingest)["queue"] == "riverside"
    # The inactive rule is skipped; no match at all goes to default.
    assert _send(ingest, facility="Elsewhere Clinic", service_type="X-OFF")["queue"] == "default"


def test_rules_update_and_delete(ingest, boss):
    ensure_queue("pro")
    r = boss.post(
        "/api/v1/routing-rules", json={"facility": "Riverside General Hospital", "queue": "pro"}
    )
    rule = r.json()
    assert _send(ingest)["queue"] == "pro"
    r = boss.put(
        f"/api/v1/routing-rules/{rule['id']}",
        json={
            "facility": "Riverside General Hospital",
            "queue": "pro",
            "priority": 9,
            "is_active": False,
        },
    )
    assert r.status_code == 200
    assert r.json()["is_active"] is False
    assert _send(ingest)["queue"] == "default"
    assert boss.delete(f"/api/v1/routing-rules/{rule['id']}").status_code == 204
    assert boss.get("/api/v1/routing-rules").json()["items"] == []
    assert boss.delete(f"/api/v1/routing-rules/{rule['id']}").status_code == 404


def test_a_rule_needs_an_existing_queue_and_a_known_class(boss):
    r = boss.post("/api/v1/routing-rules", json={"queue": "nowhere"})
    assert r.status_code == 404
    r = boss.post("/api/v1/routing-rules", json={"queue": "default", "encounter_class": "IMP"})
    assert r.status_code == 422


def test_coders_cannot_manage_rules(make_client):
    coder = make_client()
    sign_in(coder, make_user("cora", "coder"))
    assert coder.get("/api/v1/routing-rules").status_code == 403
    assert coder.post("/api/v1/routing-rules", json={"queue": "default"}).status_code == 403


def test_the_routing_page_adds_and_deletes(make_client, ingest):
    ensure_queue("er")
    admin = make_client()
    body = sign_in(admin, make_user("root", "admin"))
    page = admin.get("/routing")
    assert page.status_code == 200
    assert "No rules" in page.text
    r = admin.post(
        "/routing",
        data={
            "csrf_token": body["csrf_token"],
            "queue": "er",
            "encounter_class": "emergency",
            "priority": "4",
            "position": "10",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = admin.get("/routing")
    assert 'id="rule-' in page.text
    assert _send(ingest, **{"class": "emergency"})["queue"] == "er"
    rule_id = page.text.split('id="rule-')[1].split('"')[0]
    r = admin.post(
        f"/routing/{rule_id}/delete",
        data={"csrf_token": body["csrf_token"]},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert _send(ingest, **{"class": "emergency"})["queue"] == "default"


def test_a_rule_can_bill_matching_encounters_as_professional_fee(ingest, boss, session):
    from sqlmodel import select

    from server.models import Encounter

    ensure_queue("pro")
    r = boss.post(
        "/api/v1/routing-rules",
        json={"service_type": "99213-CLINIC", "queue": "pro", "set_class": "professional"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["set_class"] == "professional"
    sent = _send(ingest, service_type="99213-CLINIC")
    assert sent["queue"] == "pro"
    other = _send(ingest)
    classes = {e.external_id: e.encounter_class for e in session.exec(select(Encounter)).all()}
    assert classes[sent["external_id"]] == "professional"
    assert classes[other["external_id"]] == "outpatient"
