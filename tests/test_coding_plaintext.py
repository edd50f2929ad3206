"""THE PLAINTEXT SCAN, coding and billing half: code lines and typed reasons are sealed.

A coder codes an item with distinctive codes, a QA supervisor corrects it with a reason
naming the patient, and a biller returns it with a reason naming the patient. The whole
database is then dumped (pg_dump on PostgreSQL; the file bytes, WAL included, and iterdump
on SQLite) and searched for the name, both reason sentences and the codes (as typed and as
stored); the codes and the return reason still read back through the audited API and page.
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, select

from server.db import get_engine
from server.models import AuditEvent
from tests.support.coding import signed_in
from tests.support.factories import make_encounter, make_user, sign_in
from tests.support.records import dump_database

NAME = "Zebulon Quillfeather"
QA_REASON = f"Chart of {NAME} documents hyperglycemia, so E11.65 replaces E11.9"
RETURN_REASON = f"Payer rejected {NAME}: asthma line needs the exacerbation code"
FINDING_COMMENT = f"{NAME}'s glucose log shows hyperglycemia on admission"
CODES = {
    "diagnoses": [{"code": "E11.9"}, {"code": "J45.41"}, {"code": "K21.00"}],
    "procedures": [{"code": "99214", "system": "CPT", "dx_pointers": [1, 2], "charge": 180.0}],
}
CORRECTED = {**CODES, "diagnoses": [{"code": "E11.65"}, {"code": "J45.41"}, {"code": "K21.00"}]}


def test_codes_and_reasons_are_sealed_at_rest(make_client, db_url, pg_cluster):
    item_id = make_encounter(
        patient={"mrn": "MRN-QUILL-77", "name": NAME, "birth_date": date(1958, 6, 2)}
    )
    coder_account = make_user("cora", "coder", queues=["default"])
    coder = make_client()
    sign_in(coder, coder_account)
    assert coder.post("/api/v1/work/next", json={}).json()["id"] == item_id
    sup = signed_in(make_client, "sam", "supervisor")
    assert sup.put("/api/v1/queues/default/qa-sample", json={"percent": 100}).status_code == 200

    assert coder.put(f"/api/v1/work/{item_id}/codes", json=CODES).json()["errors"] == []
    assert coder.post(f"/api/v1/work/{item_id}/submit").json()["status"] == "qa_review"
    r = sup.post(
        f"/api/v1/qa/{item_id}",
        json={
            "decision": "correct",
            "reason": QA_REASON,
            "codes": CORRECTED,
            # The finding's comment names the patient too: sealed with the codes it is about.
            "findings": [{"category": "specificity", "comment": FINDING_COMMENT}],
        },
    )
    assert r.json()["status"] == "ready_for_billing", r.text
    biller = signed_in(make_client, "bill", "biller")
    r = biller.post(f"/api/v1/billing/{item_id}/return", json={"reason": RETURN_REASON})
    assert r.json()["status"] == "returned", r.text

    # Still readable where shown: the codes through the audited record, the reason on the
    # coder's code panel (its view audited too).
    assert coder.post(f"/api/v1/work/{item_id}/resume").status_code == 200
    codes = coder.get(f"/api/v1/work/{item_id}").json()["codes"]
    assert [d["code"] for d in codes["diagnoses"]] == ["E11.65", "J45.41", "K21.00"]
    assert codes["procedures"][0]["code"] == "99214"
    panel = coder.get(f"/work/{item_id}/codes", headers={"HX-Request": "true"})
    assert "Payer rejected Zebulon Quillfeather" in panel.text
    assert 'value="E11.65"' in panel.text
    with Session(get_engine()) as s:
        views = s.exec(
            select(AuditEvent).where(
                AuditEvent.action == "view-record", AuditEvent.work_item_id == item_id
            )
        ).all()
        assert len(views) == 2  # the API read and the code panel

    dump = dump_database(db_url, pg_cluster)
    assert b"claim_return" in dump  # the dump is real: it holds the tables
    assert b"bill" in dump  # and the clear values (who returned the item)
    needles = [
        NAME,
        "Quillfeather",
        QA_REASON,
        FINDING_COMMENT,
        "glucose log",
        "hyperglycemia",
        RETURN_REASON,
        "exacerbation",
        "E11.65",
        "E1165",
        "J45.41",
        "J4541",
        "K21.00",
        "K2100",
    ]
    assert [n for n in needles if n.encode() in dump] == []


def test_purged_record_codes_and_reasons_fail_cleanly(make_client):
    from datetime import timedelta

    import pytest

    from server.auth.principal import system_principal
    from server.models.base import utcnow
    from server.records import keys as records_keys
    from server.records.crypto import RecordPurged
    from tests.support.coding import GOOD_CODES, coder_with_item, item_key, saved_codes

    held = coder_with_item(make_client)
    assert held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES).status_code
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    biller = signed_in(make_client, "bill", "biller")
    r = biller.post(f"/api/v1/billing/{held.item_id}/return", json={"reason": RETURN_REASON})
    assert r.status_code == 200
    assert held.client.post(f"/api/v1/work/{held.item_id}/resume").status_code == 200
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    billed = biller.post(f"/api/v1/billing/{held.item_id}/billed", json={"claim_number": "C-1"})
    assert billed.json()["status"] == "billed"
    with Session(get_engine()) as s:
        assert saved_codes(s, held.item_id).diagnoses
        purged = records_keys.purge_billed_before(
            s, actor=system_principal("test"), before=utcnow() + timedelta(days=1)
        )
        assert purged == [held.item_id]
        s.commit()
    with Session(get_engine()) as s:
        # No key to the item's sealed fields (codes, the return reason) is handed out any more.
        with pytest.raises(RecordPurged):
            item_key(s, held.item_id)
    r = biller.get(f"/api/v1/billing/{held.item_id}/claim?format=csv")
    assert r.status_code == 410
    assert r.json()["error"]["code"] == "record_purged"
