"""open_record: the one door to plaintext (rights, audit, bound ciphertexts, purged keys)."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from server.db import get_engine, session_scope
from server.keyring import KeyringError
from server.models import AuditEvent, DataKey, Document, Encounter, Status, WorkItem
from server.records import service as records_service
from tests.support.factories import SAMPLE_NOTE, actor_of, make_encounter, make_user, sign_in


def _claim(client, item_id):
    r = client.post("/api/v1/work/next", json=None)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == item_id
    return r


def _events(action: str) -> list[AuditEvent]:
    with Session(get_engine()) as s:
        return list(
            s.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
        )


def test_leased_coder_reads_the_chart_and_the_read_is_audited(make_client):
    item_id = make_encounter()
    coder = make_user("cora", "coder", queues=["default"])
    client = make_client()
    sign_in(client, coder)
    _claim(client, item_id)
    r = client.get(f"/api/v1/work/{item_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["patient"]) == {"mrn", "name", "birth_date", "sex"}
    assert body["patient"]["mrn"].startswith("MRN")
    assert body["patient"]["birth_date"] == "1961-03-14"
    assert set(body["encounter"]) == {
        "source",
        "external_id",
        "class",
        "facility",
        "service_type",
        "start",
        "end",
        "payer_class",
        "modality",  # an addition: telehealth or telehealth-home, null in person
    }
    assert body["encounter"]["class"] == "outpatient"
    assert SAMPLE_NOTE in body["documents"][0]["text"]
    assert set(body["documents"][0]) == {"id", "title", "type", "date", "text"}
    assert body["hints"]["conditions"][0]["code"] == "10509002"
    views = [e for e in _events("view-record") if e.outcome == "success"]
    assert len(views) == 1
    assert views[0].work_item_id == item_id
    assert views[0].patient_id is not None
    assert views[0].mrn_index == records_service.mrn_index(body["patient"]["mrn"])
    assert views[0].purpose == "TREAT"
    assert "MRN" not in (views[0].detail or "")


def test_a_coder_cannot_open_an_item_leased_to_someone_else(make_client):
    item_id = make_encounter()
    ana = make_user("ana", "coder", queues=["default"])
    bob = make_user("bob", "coder", queues=["default"])
    a, b = make_client(), make_client()
    sign_in(a, ana)
    sign_in(b, bob)
    _claim(a, item_id)
    r = b.get(f"/api/v1/work/{item_id}")
    assert r.status_code == 404
    assert "MRN" not in r.text
    # The service itself refuses too, whatever route calls it, and audits the refusal.
    with pytest.raises(records_service.NotFound), session_scope() as own:
        records_service.open_record(
            session=own, actor=actor_of(bob, "coder"), work_item_id=item_id, purpose="TREAT"
        )
    denied = [e for e in _events("view-record") if e.outcome == "denied"]
    assert [e.actor for e in denied] == ["bob"]
    assert denied[0].work_item_id == item_id


def test_billing_view_adds_address_and_payer_only_for_billable_items(session):
    item_id = make_encounter()
    biller = make_user("bill", "biller")
    actor = actor_of(biller, "biller")
    with pytest.raises(records_service.NotFound):
        records_service.open_record(
            session=session, actor=actor, work_item_id=item_id, purpose="HPAYMT", view="billing"
        )
    item = session.get(WorkItem, item_id)
    item.status = Status.ready_for_billing
    session.add(item)
    session.commit()
    record = records_service.open_record(
        session=session, actor=actor, work_item_id=item_id, purpose="HPAYMT", view="billing"
    ).record
    data = record.model_dump(mode="json")
    assert data["patient"]["address"] == {
        "line": "41 Orchard Lane",
        "city": "Amherst",
        "state": "MA",
        "postal_code": "01002",
    }
    assert data["payer"]["name"] == "Blue Cross Blue Shield"
    assert data["payer"]["member_id"].startswith("XBC")
    coding = records_service.open_record(
        session=session, actor=actor, work_item_id=item_id, purpose="HPAYMT", view="coding"
    ).record.model_dump(mode="json")
    assert "address" not in coding["patient"]
    assert coding["payer"] is None


def _billable(session: Session, item_id: int) -> None:
    item = session.get(WorkItem, item_id)
    item.status = Status.ready_for_billing
    session.add(item)
    session.commit()


def _open(session: Session, actor, item_id: int):
    return records_service.open_record(
        session=session, actor=actor, work_item_id=item_id, purpose="HPAYMT", view="billing"
    ).record


def test_a_ciphertext_moved_to_another_row_fails_to_open(session):
    first, second = make_encounter(), make_encounter()
    actor = actor_of(make_user("bill", "biller"), "biller")
    for item_id in (first, second):
        _billable(session, item_id)
    enc = {
        i: session.exec(
            select(Encounter)
            .join(WorkItem, WorkItem.encounter_id == Encounter.id)
            .where(WorkItem.id == i)
        ).one()
        for i in (first, second)
    }
    # Same key, other row: give the second encounter's data key to the first.
    enc[first].sealed_patient, enc[second].sealed_patient = (
        enc[second].sealed_patient,
        enc[first].sealed_patient,
    )
    session.add_all(enc.values())
    session.commit()
    with pytest.raises(records_service.crypto.SealBroken) as caught:
        _open(session, actor, first)
    assert "integrity" in caught.value.message
    session.rollback()

    # A document moved within the same encounter's key but onto another field fails too.
    doc = session.exec(select(Document).where(Document.encounter_id == enc[second].id)).one()
    enc[second].sealed_hints = doc.sealed
    session.add(enc[second])
    session.commit()
    with pytest.raises(records_service.crypto.SealBroken):
        _open(session, actor, second)


def test_a_flipped_byte_fails(session):
    item_id = make_encounter()
    actor = actor_of(make_user("bill", "biller"), "biller")
    _billable(session, item_id)
    doc = session.exec(
        select(Document)
        .join(WorkItem, WorkItem.encounter_id == Document.encounter_id)
        .where(WorkItem.id == item_id)
    ).one()
    raw = bytearray(doc.sealed)
    raw[20] ^= 0x01
    doc.sealed = bytes(raw)
    session.add(doc)
    session.commit()
    session.close()
    with pytest.raises(records_service.crypto.SealBroken), session_scope() as own:
        _open(own, actor, item_id)
    failed = [e for e in _events("view-record") if e.outcome == "failed"]
    assert len(failed) == 1
    assert not [e for e in _events("view-record") if e.outcome == "success"]


def test_a_wrong_keyring_gives_a_clear_error(session, tmp_path, monkeypatch):
    from server.config import get_settings
    from server.keyring import init_keyring

    item_id = make_encounter()
    actor = actor_of(make_user("bill", "biller"), "biller")
    _billable(session, item_id)
    other = init_keyring(tmp_path / "other.json")
    monkeypatch.setenv("CHARTDESK_KEYRING_FILE", str(other))
    get_settings.cache_clear()
    with pytest.raises(KeyringError) as caught:
        _open(session, actor, item_id)
    assert "keyring" in caught.value.message


def test_wrapped_data_key_is_bound_to_its_row(session):
    first, second = make_encounter(), make_encounter()
    actor = actor_of(make_user("bill", "biller"), "biller")
    _billable(session, first)
    keys = {
        i: session.exec(
            select(DataKey)
            .join(Encounter, Encounter.data_key_id == DataKey.id)
            .join(WorkItem, WorkItem.encounter_id == Encounter.id)
            .where(WorkItem.id == i)
        ).one()
        for i in (first, second)
    }
    keys[first].wrapped = keys[second].wrapped
    keys[first].kek_id = keys[second].kek_id
    session.add(keys[first])
    session.commit()
    with pytest.raises(KeyringError):
        _open(session, actor, first)


def test_stored_bytes_hold_no_plaintext(session):
    item_id = make_encounter()
    enc = session.exec(
        select(Encounter)
        .join(WorkItem, WorkItem.encounter_id == Encounter.id)
        .where(WorkItem.id == item_id)
    ).one()
    blob = enc.sealed_patient + (enc.sealed_hints or b"")
    for doc in session.exec(select(Document).where(Document.encounter_id == enc.id)):
        blob += doc.sealed
    assert b"MRN" not in blob
    assert SAMPLE_NOTE.encode()[:20] not in blob
    assert json.dumps("Orchard").encode() not in blob


def test_supervisors_read_only_items_in_qa_review(db_url):
    item_id = make_encounter()
    boss = actor_of(make_user("boss", "supervisor"), "supervisor")

    def read():
        with session_scope() as s:
            return records_service.open_record(
                session=s, actor=boss, work_item_id=item_id, purpose="HOPERAT"
            ).record

    with pytest.raises(records_service.NotFound):
        read()
    with session_scope() as s:
        item = s.get(WorkItem, item_id)
        item.status = Status.qa_review
    assert SAMPLE_NOTE in read().documents[0].text
    with pytest.raises(records_service.NotFound), session_scope() as s:
        records_service.open_record(
            session=s, actor=boss, work_item_id=item_id, purpose="HOPERAT", view="billing"
        )
