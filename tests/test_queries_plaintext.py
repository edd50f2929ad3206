"""THE PLAINTEXT SCAN, physician queries: question, options, quotes and answer are sealed.

A coder queries a provider about a chart with distinctive words in its note, the options
and the question; the provider answers in free text naming the patient. The whole database
is dumped (pg_dump on PostgreSQL; the file bytes, WAL included, and iterdump on SQLite) and
searched for all of it, and for the patient's name and MRN, which the query carries sealed
for the provider; everything the server logged meanwhile is searched too. The same words
still read back through the audited doors (the provider's query, the coder's chart).
"""

from __future__ import annotations

import logging
from datetime import date

from sqlmodel import Session, select

from server.db import get_engine
from server.models import AuditEvent
from tests.support.coding import coder_with_item
from tests.support.factories import fresh_totp, make_user, sign_in
from tests.support.records import dump_database

NAME = "Philippa Wrenfield-Osei"
MRN = "MRN-WREN-5521"
NPI = "1245319599"
PASSAGE = "crepitations over the left lower lobe with rusty sputum"
NOTE = f"# Exam\nChest: {PASSAGE}. Temperature 38.9 C.\n"
QUESTION = "Which condition do the chest findings and sputum indicate?"
OPTIONS = ["Lobar pneumonia", "Bronchiectasis flare", "other", "clinically undetermined"]
ANSWER = f"{NAME} has Klebsiella lobar pneumonia per sputum culture"


def test_queries_and_answers_are_sealed_at_rest_and_not_logged(
    make_client, db_url, pg_cluster, caplog
):
    caplog.set_level(logging.DEBUG)
    held = coder_with_item(
        make_client,
        patient={"mrn": MRN, "name": NAME, "birth_date": date(1949, 2, 11)},
        documents=[{"title": "ED note", "type": "34111-5", "text": NOTE}],
        providers=[{"npi": NPI, "name": "Dr. Ada Whitlock"}],
    )
    coder = held.client
    doc = coder.get(f"/api/v1/work/{held.item_id}").json()["documents"][0]
    start = doc["text"].index(PASSAGE)
    r = coder.post(
        f"/api/v1/work/{held.item_id}/queries",
        json={
            "template": "multiple_choice",
            "question": QUESTION,
            "options": OPTIONS,
            "indicators": [{"document": doc["id"], "start": start, "end": start + len(PASSAGE)}],
            "provider": NPI,
        },
    )
    assert r.status_code == 200, r.text
    qid = r.json()["id"]
    account = make_user("drwhit", "provider", npi=NPI)
    provider = make_client()
    sign_in(provider, account)
    q = provider.get(f"/api/v1/queries/{qid}").json()
    assert q["indicators"][0]["quote"] == PASSAGE
    assert q["patient"] == {"name": NAME, "mrn": MRN}
    r = provider.post(
        f"/api/v1/queries/{qid}/answer",
        json={"option": "other", "text": ANSWER, "totp": fresh_totp(account)},
    )
    assert r.status_code == 200, r.text
    page = provider.get(f"/queries/{qid}")
    assert "Klebsiella lobar pneumonia" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert coder.post(f"/api/v1/work/{held.item_id}/resume").status_code == 200
    [seen] = coder.get(f"/api/v1/work/{held.item_id}").json()["queries"]
    assert seen["answer"]["text"] == ANSWER
    with Session(get_engine()) as s:
        details = [e.detail or "" for e in s.exec(select(AuditEvent)).all()]
    assert not [d for d in details if "Klebsiella" in d or NAME in d]

    dump = dump_database(db_url, pg_cluster)
    assert b"physician_query" in dump  # the dump is real: it holds the table
    assert NPI.encode() in dump  # and the clear values (the provider's NPI)
    needles = [
        NAME,
        "Wrenfield",
        MRN,
        PASSAGE,
        "crepitations",
        "rusty sputum",
        QUESTION,
        "chest findings",
        "Lobar pneumonia",
        "Bronchiectasis",
        "clinically undetermined",
        ANSWER,
        "Klebsiella",
    ]
    assert [n for n in needles if n.encode() in dump] == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert [n for n in needles if n in logged] == []
