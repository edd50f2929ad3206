"""Compliance review: search, pagination, patient by MRN, exports, pages, flags, and a
scripted session whose audit trail must hold exactly the expected events."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from server.audit import chain, review
from server.auth.principal import Principal
from server.db import get_engine, session_scope
from server.models import AuditEvent
from server.queue import service as queue_service
from tests.support.coding import GOOD_CODES
from tests.support.factories import SAMPLE_NOTE, make_encounter, make_token, make_user, sign_in

MRN = "MRN-AUDIT-7731"
NAME = "Marisol Quintero-Haas"
PATIENT = {
    "mrn": MRN,
    "name": NAME,
    "birth_date": "1961-03-14",
    "sex": "female",
    "ssn": "999-41-5512",
    "phone": "555-301-7719",
    "address": {
        "line": ["41 Orchard Lane"],
        "city": "Amherst",
        "state": "MA",
        "postal_code": "01002",
    },
}
PHI = [
    MRN,
    NAME,
    "Quintero",
    "999-41-5512",
    "555-301-7719",
    "Orchard Lane",
    "1961-03-14",
    SAMPLE_NOTE[:30],
]


def _events_after(last_id: int) -> list[tuple[str, str, str | None, int | None]]:
    with get_engine().connect() as conn:
        rows = conn.execute(
            text(
                "SELECT action, outcome, actor, work_item_id FROM audit_event "
                "WHERE id > :i ORDER BY id"
            ),
            {"i": last_id},
        ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def _no_empty_values(value: Any) -> bool:
    if value in (None, "", [], {}):
        return False
    if isinstance(value, dict):
        return all(_no_empty_values(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_empty_values(v) for v in value)
    return True


def _last_id() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_event")).scalar_one())


def _auditor(client: TestClient) -> dict[str, str]:
    """Bearer headers of a SIEM token with scope audit (one per client)."""
    token = getattr(client, "audit_token", None)
    if token is None:
        token = make_token(f"siem{id(client)}"[:40], "audit")
        client.audit_token = token  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {token}"}


def _write(
    actor: str,
    action: str,
    *,
    outcome: str = "success",
    work_item: int | None = None,
    time: datetime | None = None,
    detail: str | None = None,
) -> int:
    """Append one event (optionally back-dated: the row is inserted with that time).

    On PostgreSQL the database stamps each event with its own clock (migration 0007); a
    back-dated test event is written as the superuser with triggers off, as only the owner
    or a superuser could.
    """
    with session_scope() as session:
        if time is not None and session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL session_replication_role = replica"))
        event = AuditEvent(
            action=action,
            outcome=outcome,
            actor=actor,
            actor_kind="user",
            actor_roles="coder",
            work_item_id=work_item,
            purpose="TREAT",
            detail=detail,
        )
        if time is not None:
            event.time = time
        session.add(event)
        session.flush()
        assert event.id is not None
        return event.id


# ---------------------------------------------------------------- the API


def test_search_filters_and_keyset_pagination(client: TestClient) -> None:
    headers = _auditor(client)
    base = datetime(2026, 11, 1, 12, tzinfo=UTC)
    ids = []
    for i in range(7):
        ids.append(_write("ann", "claim", work_item=100 + i, time=base + timedelta(minutes=i)))
    _write("ben", "release", work_item=100, time=base)
    _write("ben", "access", outcome="denied", time=base + timedelta(hours=1))
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"actor": "ann", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/api/v1/audit/events", params=params, headers=headers).json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(ids))  # newest first, no gaps, no repeats
    item = client.get(
        "/api/v1/audit/events", params={"work_item": 100, "action": "release"}, headers=headers
    ).json()["items"]
    assert [(i["actor"], i["action"], i["work_item"]) for i in item] == [("ben", "release", 100)]
    assert set(item[0]) == {
        "id",
        "time",
        "action",
        "outcome",
        "actor",
        "actor_roles",
        "work_item",
        "patient",
        "source_ip",
        "request_id",
        "purpose",
    }
    denied = client.get(
        "/api/v1/audit/events", params={"outcome": "denied", "actor": "ben"}, headers=headers
    ).json()["items"]
    assert [i["action"] for i in denied] == ["access"]
    window = client.get(
        "/api/v1/audit/events",
        params={
            "since": (base + timedelta(minutes=2)).isoformat(),
            "until": (base + timedelta(minutes=4)).isoformat(),
            "actor": "ann",
        },
        headers=headers,
    ).json()["items"]
    assert [i["id"] for i in window] == [ids[3], ids[2]]
    for bad in (
        {"action": "dance"},
        {"outcome": "maybe"},
        {"cursor": "%%%"},
        {"limit": 0},
        {"work_item": 10**20},
        {"cursor": base64.urlsafe_b64encode(b"2026-01-01T00:00:00|" + b"9" * 30).decode()},
        {"since": "yesterday"},
        {"since": "0001-01-01T00:00:00+23:00"},
    ):
        r = client.get("/api/v1/audit/events", params=bad, headers=headers)
        assert r.status_code == 422, (bad, r.text)


def test_searching_is_itself_audited_without_the_mrn(client: TestClient) -> None:
    headers = _auditor(client)
    client.get("/api/v1/audit/events", params={"patient": MRN}, headers=headers)
    with get_engine().connect() as conn:
        row = conn.execute(
            text(
                "SELECT actor, actor_kind, purpose, mrn_index, detail FROM audit_event "
                "WHERE action = 'audit-search'"
            )
        ).one()
    assert row[0].startswith("siem")
    assert row[1] == "token"
    assert row[2] == "HCOMPL"
    assert row[3] == review.patient_index(MRN)
    assert MRN not in (row[4] or "")


def test_patient_filter_finds_accesses_by_mrn(client: TestClient, make_client: Any) -> None:
    ours = make_encounter(patient=PATIENT)
    make_encounter()
    seen = {}
    for name in ("cora", "dev"):
        coder = make_client()
        sign_in(coder, make_user(name, "coder", queues=["default"]))
        item = coder.post("/api/v1/work/next").json()["id"]
        assert coder.get(f"/api/v1/work/{item}").status_code == 200
        seen[item] = name
    body = client.get(
        "/api/v1/audit/events",
        params={"patient": f" {MRN.lower()} ", "action": "view-record"},
        headers=_auditor(client),
    ).json()
    assert [(i["actor"], i["work_item"]) for i in body["items"]] == [(seen[ours], ours)]
    assert body["items"][0]["patient"] is not None
    nobody = client.get(
        "/api/v1/audit/events", params={"patient": "NO-SUCH-MRN"}, headers=_auditor(client)
    ).json()
    assert nobody == {"items": [], "next_cursor": None}


def test_exports_parse_and_are_audited(client: TestClient) -> None:
    headers = _auditor(client)
    _write("ann", "view-record", work_item=5)
    _write("ann", "sign-in-failed", outcome="denied")
    r = client.get("/api/v1/audit/export", params={"format": "fhir"}, headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+ndjson")
    assert r.headers["cache-control"] == "no-store"
    resources = [json.loads(line) for line in r.text.splitlines()]
    # The export's own audit event commits before the data leaves, so it is in it.
    assert [res["subtype"][0]["code"] for res in resources] == [
        "view-record",
        "sign-in-failed",
        "audit-export",
    ]
    for res in resources:
        assert _no_empty_values(res), res  # FHIR forbids empty arrays, objects and nulls
        assert res["resourceType"] == "AuditEvent"
        assert res["agent"][0]["requestor"] is True
        assert res["outcome"] in {"0", "4", "8"}
        assert res["recorded"].endswith("+00:00")
        assert res["source"]["observer"]["display"] == "Chartdesk"
    view, failed, export = resources
    assert view["type"]["code"] == "110110"
    assert view["action"] == "R"
    assert view["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert view["entity"][0]["what"]["identifier"]["value"] == "5"
    assert failed["outcome"] == "4"
    assert export["agent"][0]["who"]["identifier"]["value"].startswith("siem")
    r = client.get("/api/v1/audit/export", params={"format": "csv"}, headers=headers)
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == review.CSV_COLUMNS
    assert [row[2] for row in rows[1:]] == [
        "view-record",
        "sign-in-failed",
        "audit-export",
        "audit-export",
    ]
    assert (
        client.get("/api/v1/audit/export", params={"format": "xml"}, headers=headers).status_code
        == 422
    )


FORMULAS = [
    '=HYPERLINK("http://evil.example/","x")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
]


def _formula_cells(text: str) -> list[str]:
    """Cells of a CSV that a spreadsheet would run as a formula."""
    return [
        cell
        for row in csv.reader(io.StringIO(text, newline=""))
        for cell in row
        if cell[:1] in ("=", "+", "-", "@", "\t", "\r")
    ]


def test_csv_exports_escape_formulas_typed_at_the_sign_in_page(
    client: TestClient, db_url: str
) -> None:
    """Anyone can write a username and a User-Agent into the log without signing in: the
    CSV export (API and shell) must hand them to a spreadsheet as text, never formulas."""
    from server.cli import app

    for n, formula in enumerate(FORMULAS):
        r = client.post(
            "/api/v1/session",
            json={"username": formula, "password": "x", "totp": "000000"},
            headers={"User-Agent": FORMULAS[-1 - n], "X-Forwarded-For": "=1+1"},
        )
        assert r.status_code == 401
    r = client.get("/api/v1/audit/export", params={"format": "csv"}, headers=_auditor(client))
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text, newline="")))
    failed = [row for row in rows if row["action"] == "sign-in-failed"]
    # Usernames are stored lower-cased and trimmed; each still reads as a formula.
    assert len(failed) == len(FORMULAS)
    assert all(row["actor"].startswith("'") for row in failed), failed
    assert failed[0]["actor"].startswith("'=hyperlink(")
    assert [row["user_agent"] for row in failed] == ["'" + f for f in reversed(FORMULAS)]
    assert _formula_cells(r.text) == []
    out = CliRunner().invoke(app, ["audit", "export", "--format", "csv"])
    assert out.exit_code == 0, out.output
    assert "'=HYPERLINK(" in out.stdout
    assert _formula_cells(out.stdout) == []


def test_cli_export_writes_ndjson_and_csv(db_url: str) -> None:
    from server.cli import app

    _write("ann", "claim", work_item=1)
    runner = CliRunner()
    out = runner.invoke(app, ["audit", "export", "--format", "fhir"])
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["subtype"][0]["code"] for line in lines] == ["claim", "audit-export"]
    out = runner.invoke(app, ["audit", "export", "--format", "csv", "--since", "2000-01-01"])
    assert out.stdout.splitlines()[0] == ",".join(review.CSV_COLUMNS)
    bad = runner.invoke(app, ["audit", "export", "--format", "pdf"])
    assert bad.exit_code == 2


def test_verify_endpoint(client: TestClient) -> None:
    headers = _auditor(client)
    _write("ann", "claim")
    chain.seal_pending(wait=True)
    body = client.get("/api/v1/audit/verify", headers=headers).json()
    assert body["ok"] is True
    assert body["events_checked"] >= 1
    assert body["first_bad"] is None
    with get_engine().connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER audit_event_no_update"))
        conn.execute(text("UPDATE audit_event SET actor = 'eve' WHERE actor = 'ann'"))
        conn.commit()
    body = client.get("/api/v1/audit/verify", headers=headers).json()
    assert body["ok"] is False
    assert body["first_bad"]["seq"] == 1


# ---------------------------------------------------------------- refused attempts


def test_refused_attempts_are_in_the_log(client: TestClient, make_client: Any) -> None:
    cora = make_user("cora", "coder", queues=["default"])
    r = client.post(
        "/api/v1/session",
        json={"username": "cora", "password": "wrong password!!", "totp": "000000"},
    )
    assert r.status_code == 401
    coder = make_client()
    sign_in(coder, cora)
    assert coder.get("/api/v1/queues").status_code == 403
    assert coder.get("/api/v1/audit/events").status_code == 403
    body = client.get(
        "/api/v1/audit/events", params={"actor": "cora"}, headers=_auditor(client)
    ).json()
    got = {(i["action"], i["outcome"]) for i in body["items"]}
    assert ("sign-in-failed", "denied") in got
    assert ("access", "denied") in got
    assert ("sign-in", "success") in got


# ---------------------------------------------------------------- the scripted session


def test_scripted_session_leaves_exactly_the_expected_events(
    make_client: Any, client: TestClient
) -> None:
    """Every kind of access that exists, then: 0 missing, 0 extra; no PHI anywhere."""
    item_a = make_encounter(patient=PATIENT)
    item_b = make_encounter(priority=-1)
    with session_scope() as s:
        queue_service.create_queue(s, name="cardiology")
    cora = make_user("cora", "coder", queues=["default"])
    dev = make_user("dev", "coder", queues=["default"])
    sam = make_user("sam", "supervisor")
    comp = make_user("comp", "compliance")
    bill = make_user("bill", "biller")
    start = _last_id()

    coder, other, sup, auditor = make_client(), make_client(), make_client(), make_client()
    biller = make_client()
    bad = client.post(
        "/api/v1/session", json={"username": "cora", "password": "nope-nope-nope", "totp": "1"}
    )
    assert bad.status_code == 401
    sign_in(coder, cora)
    sign_in(other, dev)
    sign_in(sup, sam)
    sign_in(biller, bill)
    claimed = coder.post("/api/v1/work/next").json()["id"]
    assert claimed == item_a
    assert coder.get(f"/api/v1/work/{item_a}").status_code == 200
    assert other.get(f"/api/v1/work/{item_a}").status_code == 404
    hold = {"reason": "other", "note": ""}
    assert coder.post(f"/api/v1/work/{item_a}/hold", json=hold).status_code == 200
    assert coder.post(f"/api/v1/work/{item_a}/resume").status_code == 200
    saved = coder.put(f"/api/v1/work/{item_a}/codes", json=GOOD_CODES)
    assert saved.json()["errors"] == [], saved.text
    assert coder.post(f"/api/v1/work/{item_a}/submit").status_code == 200
    claim = biller.get(f"/api/v1/billing/{item_a}/claim", params={"format": "fhir"})
    assert claim.status_code == 200
    billed = biller.post(f"/api/v1/billing/{item_a}/billed", json={"claim_number": "CLM-1"})
    assert billed.status_code == 200
    assert sup.post(f"/api/v1/work/{item_b}/assign", json={"username": "dev"}).status_code == 200
    assert other.post(f"/api/v1/work/{item_b}/release").status_code == 200
    assert sup.post(f"/api/v1/work/{item_b}/move", json={"queue": "cardiology"}).status_code == 200
    assert coder.get("/api/v1/queues").status_code == 403
    assert coder.delete("/api/v1/session").status_code in (200, 204)
    sign_in(auditor, comp)
    assert auditor.post("/compliance/patient", data={"mrn": MRN}).status_code == 200

    got = Counter(_events_after(start))
    expected = Counter(
        [
            ("sign-in-failed", "denied", "cora", None),
            ("sign-in", "success", "cora", None),
            ("sign-in", "success", "dev", None),
            ("sign-in", "success", "sam", None),
            ("sign-in", "success", "bill", None),
            ("claim", "success", "cora", item_a),
            ("view-record", "success", "cora", item_a),
            ("access", "denied", "dev", item_a),
            ("hold", "success", "cora", item_a),
            ("resume", "success", "cora", item_a),
            ("code-save", "success", "cora", item_a),
            ("submit", "success", "cora", item_a),
            ("view-record", "success", "bill", item_a),
            ("claim-export", "success", "bill", item_a),
            ("billed", "success", "bill", item_a),
            ("assign", "success", "sam", item_b),
            ("release", "success", "dev", item_b),
            ("move", "success", "sam", item_b),
            ("access", "denied", "cora", None),
            ("sign-out", "success", "cora", None),
            ("sign-in", "success", "comp", None),
            ("audit-search", "success", "comp", None),
        ]
    )
    missing, extra = expected - got, got - expected
    assert (dict(missing), dict(extra)) == ({}, {})

    # The compliance officer's report shows the coder's view of that chart.
    report = auditor.post("/compliance/patient", data={"mrn": MRN}).text
    assert 'data-actor="cora"' in report
    assert 'data-action="view-record"' in report
    # Plaintext scan: no patient data in the audit tables or the exports.
    chain.seal_pending(wait=True, checkpoint=True)
    report = chain.verify()
    assert report.ok
    assert report.unsealed == 0
    headers = _auditor(client)
    dumps = [
        client.get("/api/v1/audit/export", params={"format": f}, headers=headers).text
        for f in ("fhir", "csv")
    ]
    with get_engine().connect() as conn:
        for table in ("audit_event", "audit_seal", "audit_checkpoint"):
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608
            assert rows
            dumps.append(repr(rows))
    blob = "\n".join(dumps)
    for phi in PHI:
        assert phi.lower() not in blob.lower(), phi
    assert not re.search(r"MRN-?[0-9A-F]{6,}", blob)


# ---------------------------------------------------------------- pages and flags


def test_compliance_pages(make_client: Any) -> None:
    comp = make_user("comp", "compliance")
    page = make_client()
    sign_in(page, comp)
    _write("ann", "claim", work_item=3)
    home = page.get("/compliance")
    assert home.status_code == 200
    assert home.headers["cache-control"] == "no-store"
    assert 'id="filters"' in home.text
    found = page.post("/compliance/search", data={"actor": "ann"})
    assert 'data-action="claim"' in found.text
    fragment = page.post(
        "/compliance/search", data={"actor": "ann"}, headers={"HX-Request": "true"}
    )
    assert fragment.text.lstrip().startswith('<section id="results">')
    today = datetime.now(UTC).date().isoformat()
    same_day = page.post(
        "/compliance/search", data={"actor": "ann", "since": today, "until": today}
    )
    assert 'data-action="claim"' in same_day.text  # "To" a date includes that day
    assert f'name="until" value="{today}"' in same_day.text
    refused = page.post("/compliance/search", data={"since": "yesterday"})
    assert refused.status_code == 422
    assert "Dates are" in refused.text
    user = page.get("/compliance/users/ann")
    assert user.status_code == 200
    assert "claim" in user.text
    verify = page.get("/compliance/verify")
    assert 'data-ok="true"' in verify.text
    assert page.get("/compliance/flags").status_code == 200
    assert page.get("/compliance/patient").status_code == 200
    missing = page.post("/compliance/patient", data={"mrn": "NOBODY"})
    assert 'id="no-patient"' in missing.text


def test_keyset_pages_on_the_search_page(make_client: Any) -> None:
    comp = make_user("comp", "compliance")
    page = make_client()
    sign_in(page, comp)
    for i in range(55):
        _write("ann", "claim", work_item=i)
    first = page.post("/compliance/search", data={"actor": "ann"}).text
    cursor = re.search(r'name="cursor" value="([^"]+)"', first)
    assert cursor is not None
    second = page.post("/compliance/search", data={"actor": "ann", "cursor": cursor.group(1)}).text
    ids_first = set(re.findall(r'id="event-(\d+)"', first))
    ids_second = set(re.findall(r'id="event-(\d+)"', second))
    assert len(ids_first) == 50
    assert len(ids_second) == 5
    assert not ids_first & ids_second


def test_flags_for_review(db_url: str) -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    _write("peek", "claim", work_item=1)
    _write("peek", "view-record", work_item=1)  # held: fine
    _write("peek", "view-record", work_item=2)  # never claimed: outside the lease
    for i in range(10, 18):
        _write("peek", "view-record", work_item=i)  # 10 charts seen, 1 claimed
    _write("night", "sign-in", time=yesterday.replace(hour=3, minute=7))
    _write("night", "sign-in", time=yesterday.replace(hour=12, minute=0))
    for _ in range(5):
        _write("mallory", "sign-in-failed", outcome="denied")
    _write("night", "emergency-access", work_item=9, detail="patient coded in ED")
    with session_scope() as s:
        since, until = review.default_window(2)
        flags = review.review_flags(
            s, actor=Principal(name="comp", kind="user"), since=since, until=until
        )
    kinds = Counter((f.kind, f.actor) for f in flags)
    assert kinds == Counter(
        {
            ("outside-lease", "peek"): 9,
            ("views-vs-claims", "peek"): 1,
            ("unusual-hours", "night"): 1,
            ("denied", "mallory"): 1,
            ("emergency-access", "night"): 1,
        }
    )


@pytest.mark.sealer
def test_the_running_app_seals_by_itself(client: TestClient) -> None:
    """The lifespan starts a sealer thread: events get chained without anyone asking."""
    ids = [_write("ann", "claim", work_item=i) for i in range(3)]
    wait = threading.Event()
    for _ in range(400):
        with get_engine().connect() as conn:
            sealed = conn.execute(
                text("SELECT count(*) FROM audit_seal WHERE event_id IN (:a, :b, :c)"),
                dict(zip("abc", ids, strict=True)),
            ).scalar_one()
        if sealed == 3:
            break
        wait.wait(0.05)
    assert sealed == 3
