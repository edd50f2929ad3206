"""THE PLAINTEXT SCAN: after ingest and reads, nothing identifying is in the database or logs.

Every Synthea fixture is ingested through the API and every record is opened; then the whole
database is dumped (pg_dump on PostgreSQL; the file bytes, WAL included, and iterdump on
SQLite) and searched for every patient name, SSN, MRN, birth date and one sentence of every
note. The same search runs over everything the server logged meanwhile.

Dates of service are stored in clear by design (routing and aging need them). Three of the
fixture patients are newborns whose first encounter falls on their birth date; that date
string is then legitimately present as a date of service, so a birth date equal to one of
the patient's own dates of service is searched only in the forms a date of service never
takes (US and compact spellings).

Practitioners' names are public directory data and are stored in clear (a physician query
is addressed by NPI and name). Synthea draws them from the same name lists as patients, so
a patient's single given or family name that is also a word of a practitioner's name in any
fixture is searched only as part of the patient's full name.
"""

from __future__ import annotations

import base64
import logging
import re

from sqlmodel import Session, select

from server.db import get_engine
from server.models import Status, WorkItem
from server.records import service as records_service
from tests.support.factories import actor_of, make_token, make_user
from tests.support.records import FHIR, dump_database, facts, fixture_files, load


def _needles(all_facts) -> tuple[list[str], list[str]]:
    """(values exactly as the fixtures hold them, other spellings of them)."""
    exact: list[str] = []
    variants: list[str] = []
    practitioners = set().union(*(f.practitioner_words for f in all_facts))
    for f in all_facts:
        exact += [n for n in f.names if n not in practitioners]
        exact += f.ssns + f.mrns + f.sentences()
        variants += f.full_names + [n.replace("-", "") for n in f.ssns]
        for born in f.birth_dates:
            y, m, d = born.split("-")
            variants += [f"{m}/{d}/{y}", f"{y}{m}{d}"]
            if born not in f.service_dates:
                exact.append(born)
    return exact, variants


def test_no_plaintext_at_rest_or_in_logs(make_client, db_url, pg_cluster, caplog):
    caplog.set_level(logging.DEBUG)
    ingest = make_client()
    ingest.headers["Authorization"] = f"Bearer {make_token('interface-engine', 'ingest')}"
    all_facts, ids, first_answer = [], [], []
    for path in fixture_files():
        all_facts.append(facts(load(path)))
        r = ingest.post("/api/v1/fhir", content=path.read_bytes(), headers=FHIR)
        assert r.status_code == 200
        ids += [int(i["id"]) for i in r.json()["work_items"]]
        first_answer = first_answer or r.json()["work_items"]
    # Resend one: the duplicate path must not leak either (and must be the duplicate path).
    again = ingest.post("/api/v1/fhir", content=fixture_files()[0].read_bytes(), headers=FHIR)
    assert again.status_code == 200, again.text
    resent = again.json()["work_items"]
    assert [i["status"] for i in resent] == ["duplicate"] * len(first_answer)
    assert [i["id"] for i in resent] == [i["id"] for i in first_answer]

    # Read every record (billing view: address and member id too), through the one door.
    biller = actor_of(make_user("reader", "biller"), "biller")
    with Session(get_engine()) as s:
        for item in s.exec(select(WorkItem)):
            item.status = Status.ready_for_billing
            s.add(item)
        s.commit()
    opened = 0
    with Session(get_engine()) as s:
        for item_id in ids:
            record = records_service.open_record(
                session=s, actor=biller, work_item_id=item_id, purpose="HPAYMT", view="billing"
            ).record
            opened += bool(record.patient.name)
        s.commit()
    assert opened == 95

    exact, variants = _needles(all_facts)
    needles = exact + variants
    assert len(exact) > 90
    # The needles are real: the fixtures hold each one (notes once base64-decoded).
    raw = b"".join(p.read_bytes() for p in fixture_files())
    notes = b"".join(base64.b64decode(m) for m in re.findall(rb'"data": "([A-Za-z0-9+/=]+)"', raw))
    assert [n for n in exact if n.encode() not in raw + notes] == []

    dump = dump_database(db_url, pg_cluster)
    # The dump is real: it holds the audit log and the clear routing fields.
    assert b"interface-engine" in dump
    assert b"HILLTOWN COMMUNITY HEALTH CENTERS INC" in dump
    found = [n for n in needles if n.encode() in dump]
    assert found == []

    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert [n for n in needles if n in logged] == []
