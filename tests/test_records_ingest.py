"""Ingest: every Synthea fixture, idempotency, all-or-nothing bundles, 413/415, JSON form."""

from __future__ import annotations

import base64
import copy
import json
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from server.audit import chain
from server.models import AuditEvent, Encounter, Queue, Status, WorkItem
from server.records import service as records_service
from tests.support.factories import actor_of, encounter_data, make_token
from tests.support.records import FHIR, facts, fixture_files, load, row_counts

SMALL = "conchita_0580b365.json"


@pytest.fixture
def ingest(make_client):
    """A client holding an `ingest` token."""
    client = make_client()
    client.headers["Authorization"] = f"Bearer {make_token('interface-engine', 'ingest')}"
    return client


def _small() -> dict:
    return load(next(p for p in fixture_files() if p.name == SMALL))


def _open_all(session: Session, item_ids: list[int]) -> dict[str, dict]:
    """Open every item as a biller (billing statuses), keyed by encounter external id."""
    from tests.support.factories import make_user

    session.rollback()  # SQLite: our open transaction holds the write lock make_user needs
    biller = actor_of(make_user("reader", "biller"), "biller")
    for item in session.exec(select(WorkItem).where(WorkItem.id.in_(item_ids))):
        item.status = Status.ready_for_billing
        session.add(item)
    session.commit()
    out = {}
    for item_id in item_ids:
        record = records_service.open_record(
            session=session, actor=biller, work_item_id=item_id, purpose="HPAYMT", view="billing"
        ).record
        out[record.encounter.external_id] = record.model_dump(mode="json")
    session.commit()
    return out


def test_every_synthea_fixture_ingests_and_every_note_reads_back(ingest, session):
    files = fixture_files()
    assert len(files) == 6
    expected_items, all_ids, notes = 0, [], {}
    for path in files:
        bundle = load(path)
        f = facts(bundle)
        expected_items += f.encounters
        notes.update(f.notes)
        r = ingest.post("/api/v1/fhir", content=path.read_bytes(), headers=FHIR)
        assert r.status_code == 200, r.text
        items = r.json()["work_items"]
        assert len(items) == f.encounters
        assert {i["status"] for i in items} == {"created"}
        assert set(items[0]) == {"id", "external_id", "queue", "status"}
        all_ids += [int(i["id"]) for i in items]
    assert len(all_ids) == expected_items == 95
    items = session.exec(select(WorkItem)).all()
    assert len(items) == 95
    assert {i.status for i in items} == {Status.ready}
    records = _open_all(session, all_ids)
    for external_id, texts in notes.items():
        got = {d["text"] for d in records[external_id]["documents"]}
        assert got == texts  # byte for byte (the two copies of a Synthea note are one)
    nina = [r for r in records.values() if r["patient"]["name"] == "Nina110 Weber641"]
    assert len(nina) == 30
    assert all(r["documents"] == [] for r in nina)
    classes = {r["encounter"]["class"] for r in records.values()}
    assert classes == {"inpatient", "emergency", "outpatient"}
    rodney = [r for r in records.values() if r["patient"]["name"].startswith("Rodney21")]
    assert rodney[0]["patient"]["birth_date"] == "1992-02-21"
    assert rodney[0]["patient"]["address"]["city"] == "Oxford"
    assert rodney[0]["payer"]["name"] == "NO_INSURANCE"
    assert rodney[0]["encounter"]["payer_class"] == "self-pay"
    assert any(r["hints"]["conditions"] for r in rodney)
    assert any(r["hints"]["claim_lines"] for r in rodney)


def test_resending_answers_duplicate_and_changes_nothing(ingest):
    body = json.dumps(_small())
    first = ingest.post("/api/v1/fhir", content=body, headers=FHIR)
    assert first.status_code == 200
    # Seal the first send's events now: the app's background sealer would otherwise write
    # their seals at some moment of its own, maybe between the two counts.
    chain.seal_pending(wait=True, checkpoint=True)
    before = row_counts()
    again = ingest.post("/api/v1/fhir", content=body, headers=FHIR)
    assert again.status_code == 200
    assert [i["status"] for i in again.json()["work_items"]] == ["duplicate"] * 7
    assert [i["id"] for i in again.json()["work_items"]] == [
        i["id"] for i in first.json()["work_items"]
    ]
    assert row_counts() == before


def _assert_nothing_stored(before: dict[str, int]) -> None:
    after = row_counts()
    assert after == before, {k: (before[k], after[k]) for k in after if after[k] != before[k]}


def test_a_half_valid_bundle_is_refused_whole_with_every_location(ingest):
    bundle = _small()
    entries = bundle["entry"]
    enc_idx = [i for i, e in enumerate(entries) if e["resource"]["resourceType"] == "Encounter"]
    doc_idx = [
        i for i, e in enumerate(entries) if e["resource"]["resourceType"] == "DocumentReference"
    ]
    del entries[enc_idx[2]]["resource"]["subject"]
    entries[enc_idx[3]]["resource"]["subject"]["reference"] = "urn:uuid:nobody-here"
    entries[doc_idx[0]]["resource"]["content"][0]["attachment"]["data"] = "%%%not base64%%%"
    entries.append({"resource": {"resourceType": "Basic", "id": "x"}})  # unknown: skipped
    before = row_counts()
    r = ingest.post("/api/v1/fhir", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_failed"
    locs = [d["loc"] for d in error["details"]]
    assert ["entry", enc_idx[2], "resource", "subject"] in locs
    assert ["entry", enc_idx[3], "resource", "subject", "reference"] in locs
    assert ["entry", doc_idx[0], "resource", "content", 0, "attachment", "data"] in locs
    assert len(locs) == 3
    assert "Ramón841" not in r.text
    assert "999-" not in r.text
    _assert_nothing_stored(before)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b'{"resourceType": "Patient"}', 422, "validation_failed"),
        (b'["a list"]', 422, "validation_failed"),
        (b'{"resourceType": "Bundle", "type": "transaction"}', 422, "validation_failed"),
    ],
)
def test_malformed_bodies(ingest, body, status, code):
    before = row_counts()
    r = ingest.post("/api/v1/fhir", content=body, headers=FHIR)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    _assert_nothing_stored(before)


def test_wrong_content_type_is_415(ingest):
    before = row_counts()
    r = ingest.post(
        "/api/v1/fhir", content=json.dumps(_small()), headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"
    r = ingest.post("/api/v1/encounters", data={"a": "b"})
    assert r.status_code == 415
    _assert_nothing_stored(before)


def test_a_25_mb_body_is_413(ingest):
    bundle = _small()
    note = base64.b64encode(b"x" * (19 * 1024 * 1024)).decode()  # ~25 MB once encoded
    bundle["entry"][-1]["resource"]["content"] = [{"attachment": {"data": note}}]
    body = json.dumps(bundle).encode()
    assert len(body) > 25 * 1024 * 1024
    before = row_counts()
    r = ingest.post("/api/v1/fhir", content=body, headers=FHIR)
    assert r.status_code == 413
    _assert_nothing_stored(before)


def test_only_ingest_tokens_may_send(make_client):
    bundle = json.dumps(_small())
    billing = make_client()
    billing.headers["Authorization"] = f"Bearer {make_token('billing-system', 'billing')}"
    assert billing.post("/api/v1/fhir", content=bundle, headers=FHIR).status_code == 403
    assert make_client().post("/api/v1/fhir", content=bundle, headers=FHIR).status_code == 401


def test_our_json_form(ingest, session):
    data = encounter_data().model_dump(mode="json", by_alias=True)
    r = ingest.post("/api/v1/encounters", json=data)
    assert r.status_code == 200, r.text
    [item] = r.json()["work_items"]
    assert item["status"] == "created"
    assert item["queue"] == "default"
    assert item["external_id"] == data["external_id"]
    again = ingest.post("/api/v1/encounters", json=data)
    assert again.json()["work_items"][0] == {**item, "status": "duplicate"}
    stored = session.get(WorkItem, int(item["id"]))
    enc = session.get(Encounter, stored.encounter_id)
    assert stored.due_at == enc.end_at + timedelta(days=3)  # CHARTDESK_DUE_DAYS_AFTER_DISCHARGE
    events = session.exec(
        select(AuditEvent).where(
            AuditEvent.action == "ingest", AuditEvent.work_item_id == stored.id
        )
    ).all()
    assert len(events) == 1
    assert events[0].actor == "interface-engine"
    assert events[0].patient_id == enc.patient_id
    assert events[0].mrn_index == records_service.mrn_index(data["patient"]["mrn"])


def test_our_json_form_invalid_lists_problems_without_echoing_values(ingest):
    data = encounter_data().model_dump(mode="json", by_alias=True)
    data["class"] = "spaceship"
    data["patient"]["birth_date"] = "Marisol"
    del data["external_id"]
    before = row_counts()
    r = ingest.post("/api/v1/encounters", json=data)
    assert r.status_code == 422
    locs = [d["loc"] for d in r.json()["error"]["details"]]
    assert ["class"] in locs
    assert ["patient", "birth_date"] in locs
    assert ["external_id"] in locs
    assert "Marisol" not in r.text
    assert "spaceship" not in r.text
    _assert_nothing_stored(before)


def test_due_date_setting(ingest, session, monkeypatch):
    from server.config import get_settings

    monkeypatch.setenv("CHARTDESK_DUE_DAYS_AFTER_DISCHARGE", "10")
    get_settings.cache_clear()
    data = encounter_data().model_dump(mode="json", by_alias=True)
    r = ingest.post("/api/v1/encounters", json=data)
    stored = session.get(WorkItem, int(r.json()["work_items"][0]["id"]))
    enc = session.get(Encounter, stored.encounter_id)
    assert stored.due_at - enc.end_at == timedelta(days=10)
    default = session.exec(select(Queue).where(Queue.name == "default")).one()
    assert stored.queue_id == default.id


def test_unknown_resource_types_are_skipped(ingest):
    bundle = copy.deepcopy(_small())
    bundle["entry"].insert(0, {"resource": {"resourceType": "SomethingNew", "id": "1"}})
    r = ingest.post("/api/v1/fhir", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200
    assert len(r.json()["work_items"]) == 7


def test_two_senders_of_one_encounter_at_once_make_one_item(db_url):
    import threading

    from server.auth.principal import system_principal
    from server.db import session_scope

    data = encounter_data()
    barrier = threading.Barrier(4)
    results: list[str] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            barrier.wait()
            with session_scope() as s:
                item = records_service.create_encounter(
                    s, actor=system_principal("engine"), data=data
                )
            results.append(item.status)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == ["created", "duplicate", "duplicate", "duplicate"]
    counts = row_counts()
    assert counts["encounter"] == counts["work_item"] == counts["patient"] == 1


def test_control_characters_in_clear_fields_are_refused(ingest):
    data = encounter_data().model_dump(mode="json", by_alias=True)
    data["facility"] = "Riverside\x00General"
    data["external_id"] = "ENC\n42"
    before = row_counts()
    r = ingest.post("/api/v1/encounters", json=data)
    assert r.status_code == 422
    assert sorted(d["loc"] for d in r.json()["error"]["details"]) == [
        ["external_id"],
        ["facility"],
    ]
    _assert_nothing_stored(before)


@pytest.mark.parametrize("path", ["/api/v1/fhir", "/api/v1/encounters"])
@pytest.mark.parametrize("depth", [100_000, 500])
def test_deeply_nested_json_is_refused_and_nothing_stored(ingest, path, depth):
    """`[` x 100,000 made the parser overflow the stack (500); 500 levels would reach code
    that walks the tree. Either is refused 422 naming the body, before anything is stored."""
    before = row_counts()
    body = b"[" * depth + b"]" * depth
    r = ingest.post(path, content=body, headers=FHIR)
    assert r.status_code == 422, r.text[:300]
    error = r.json()["error"]
    assert error["code"] == "json_too_deep"
    assert error["details"][0]["loc"] == ["body"]
    assert "nested" in error["message"]
    _assert_nothing_stored(before)
    nested = {"resourceType": "Bundle", "type": "batch", "entry": []}
    inner: dict = nested
    for _ in range(200):
        inner["extension"] = [{}]
        inner = inner["extension"][0]
    assert ingest.post(path, json=nested).status_code == 422
    _assert_nothing_stored(before)


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2026-10-01T09:00:00Z", "9999-12-31T23:59:59Z", "end"),
        ("0001-01-01T00:00:00+23:59", "2026-10-01T09:00:00Z", "start"),
        ("2026-10-01T09:00:00Z", "2026-09-30T09:00:00Z", "end"),
    ],
    ids=["end-at-the-end-of-time", "start-before-year-1-in-utc", "end-before-start"],
)
def test_encounter_times_out_of_range_or_backwards_are_422_naming_the_field(
    ingest, start, end, field
):
    before = row_counts()
    data = encounter_data().model_dump(mode="json", by_alias=True)
    data["start"], data["end"] = start, end
    r = ingest.post("/api/v1/encounters", json=data)
    assert r.status_code == 422, r.text[:300]
    assert [d["loc"] for d in r.json()["error"]["details"]] == [[field]]
    bundle = _small()
    encounter = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"
    )
    encounter["period"] = {"start": start, "end": end}
    r = ingest.post("/api/v1/fhir", json=bundle)
    assert r.status_code == 422, r.text[:300]
    locs = [d["loc"] for d in r.json()["error"]["details"]]
    assert len(locs) == 1
    assert locs[0][-1] == field
    _assert_nothing_stored(before)
