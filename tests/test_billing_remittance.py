"""835 remittances in: amounts and reasons stored per claim and line, idempotent by trace
number, malformed files refused with the segment number, and denials back to the coder who
coded them, corrected and sent again as a replacement claim (CLM05-3 = 7, REF*F8)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from sqlmodel import Session, col, func, select

from server.db import get_engine
from server.models import (
    AuditEvent,
    RemitAdjustment,
    RemitClaim,
    RemitLine,
    RemitRemark,
    Remittance,
    WorkItem,
)
from tests.support.coding import GOOD_CODES, pyx12_accepts
from tests.support.factories import make_token
from tests.support.remit import RemitClaim as RC
from tests.support.remit import RemitLine as RL
from tests.support.remit import build_835
from tests.test_billing_api import _coded

X12 = {"Content-Type": "application/edi-x12"}


def _pyx12_835(text: str) -> bool:
    import pyx12.params
    import pyx12.x12n_document

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "remit.835"
        path.write_text(text, encoding="ascii")
        return bool(
            pyx12.x12n_document.x12n_document(
                param=pyx12.params.params(),
                src_file=str(path),
                fd_997=None,
                fd_html=None,
                fd_json=None,
            )
        )


def _billing(make_client):
    system = make_client()
    system.headers["Authorization"] = f"Bearer {make_token('billing-system', 'billing')}"
    return system


def _billed(make_client, system, coders=("coder1", "coder2", "coder3")):
    held = []
    for n, name in enumerate(coders, start=1):
        h = _coded(make_client, name)
        assert system.get(f"/api/v1/billing/{h.item_id}/claim").status_code == 200
        r = system.post(f"/api/v1/billing/{h.item_id}/billed", json={"claim_number": f"B{n}"})
        assert r.status_code == 200, r.text
        held.append(h)
    return held


def _remit(paid, denied, partial, trace="TRACE0001"):
    return build_835(
        [
            RC(f"CD{paid}", "1", 125, 125, "PAYER-1", [RL("99213", 125, 125)]),
            RC(
                f"CD{denied}",
                "4",
                125,
                0,
                "PAYER-2",
                [RL("99213", 125, 0, [("CO", "97", 100), ("CO", "16", 25)], ["N130", "M51"])],
            ),
            RC(
                f"CD{partial}",
                "1",
                125,
                60,
                "PAYER-3",
                [RL("99213", 125, 60, [("CO", "45", 15), ("CO", "50", 50)])],
            ),
            RC("CD999999", "1", 80, 80, "PAYER-9", [RL("99212", 80, 80)]),
        ],
        trace=trace,
    )


def _counts():
    with Session(get_engine()) as s:
        return tuple(
            s.exec(select(func.count()).select_from(t)).one()
            for t in (Remittance, RemitClaim, RemitLine, RemitAdjustment, RemitRemark)
        )


def test_835_posts_amounts_statuses_and_sends_denials_back_as_replacements(make_client):
    system = _billing(make_client)
    paid, denied, partial = _billed(make_client, system)
    text = _remit(paid.item_id, denied.item_id, partial.item_id)
    assert _pyx12_835(text)

    r = system.post("/api/v1/billing/remittance", content=text, headers=X12)
    assert r.status_code == 200, r.text
    claims = {c["claim_number"]: c for c in r.json()["claims"]}
    assert claims[f"CD{paid.item_id}"]["status"] == "paid"
    assert claims[f"CD{paid.item_id}"]["paid"] == 125
    d = claims[f"CD{denied.item_id}"]
    assert d["status"] == "denied"
    assert d["paid"] == 0
    assert [(a["group"], a["reason"], a["amount"]) for a in d["adjustments"]] == [
        ("CO", "97", 100),
        ("CO", "16", 25),
    ]
    p = claims[f"CD{partial.item_id}"]
    assert (p["status"], p["paid"]) == ("partial", 60)
    assert claims["CD999999"]["status"] == "unmatched"  # kept and listed, not lost

    with Session(get_engine()) as s:
        stored = {c.claim_number: c for c in s.exec(select(RemitClaim)).all()}
        row = stored[f"CD{denied.item_id}"]
        assert (row.paid_cents, row.charge_cents, row.denied_cents) == (0, 12500, 12500)
        assert row.payer_claim_number == "PAYER-2"
        assert stored[f"CD{partial.item_id}"].denied_cents == 5000  # CO-45 is contractual
        assert stored["CD999999"].work_item_id is None
        remarks = s.exec(select(RemitRemark.code).where(RemitRemark.remit_claim_id == row.id))
        assert sorted(remarks.all()) == ["M51", "N130"]
        lines = s.exec(select(RemitLine).where(RemitLine.remit_claim_id == row.id)).all()
        assert [(x.code, x.charge_cents, x.paid_cents) for x in lines] == [("99213", 12500, 0)]
        statuses = {i: s.get(WorkItem, i).status for i in (paid.item_id, denied.item_id)}
        assert statuses == {paid.item_id: "billed", denied.item_id: "returned"}
        assert s.get(WorkItem, partial.item_id).status == "returned"
        events = s.exec(
            select(AuditEvent.action).where(AuditEvent.work_item_id == denied.item_id)
        ).all()
        assert "remittance" in events
        assert "returned" in events
        details = " ".join(e or "" for e in s.exec(select(AuditEvent.detail)).all())
        assert "MEM123456" not in details
        assert "DOE" not in details

    unmatched = system.get("/api/v1/billing/remittance/claims", params={"status": "unmatched"})
    assert [c["claim_number"] for c in unmatched.json()["items"]] == ["CD999999"]
    first = system.get("/api/v1/billing/remittance/claims", params={"limit": 3}).json()
    assert len(first["items"]) == 3
    rest = system.get(
        "/api/v1/billing/remittance/claims", params={"limit": 3, "cursor": first["next_cursor"]}
    ).json()
    assert [c["claim_number"] for c in rest["items"]] == ["CD999999"]
    assert rest["next_cursor"] is None

    # The denied claim is back with the coder who coded it, with the payer's coded reasons.
    coder = denied.client
    mine = coder.get("/api/v1/work/mine").json()["items"]
    assert [i["id"] for i in mine] == [denied.item_id]
    assert paid.client.get("/api/v1/work/mine").json()["items"] == []
    assert coder.post(f"/api/v1/work/{denied.item_id}/resume").status_code == 200
    back = coder.get(f"/api/v1/work/{denied.item_id}").json()["returned"]
    assert back["denial"]["payer_claim_number"] == "PAYER-2"
    (line,) = back["denial"]["lines"]
    assert [(a["reason"], a["amount"]) for a in line["adjustments"]] == [("97", 100), ("16", 25)]
    assert [r["code"] for r in line["remarks"]] == ["N130", "M51"]
    assert "CO-97" in back["reason"]
    page = coder.get(f"/work/{denied.item_id}")
    assert page.status_code == 200
    assert 'id="denial"' in page.text  # the payer's coded reasons, line by line
    assert "CO-97" in page.text
    assert "CO-16" in page.text
    assert "Benefit included in the payment for another service" in page.text
    assert "N130" in page.text
    assert "99213" in page.text

    # Corrected and submitted again, it goes out as a replacement of the payer's claim.
    fixed = {**GOOD_CODES, "procedures": [{**GOOD_CODES["procedures"][0], "modifiers": []}]}
    assert coder.put(f"/api/v1/work/{denied.item_id}/codes", json=fixed).json()["errors"] == []
    assert coder.post(f"/api/v1/work/{denied.item_id}/submit").json()["status"] == (
        "ready_for_billing"
    )
    x = system.get(f"/api/v1/billing/{denied.item_id}/claim", params={"format": "x12"})
    assert x.status_code == 200, x.text
    clm = next(seg for seg in x.text.split("~\n") if seg.startswith("CLM*"))
    assert clm.split("*")[5] == "11:B:7"  # an office visit (the tests' setting), replacement
    assert "REF*F8*PAYER-2~" in x.text
    ok, log = pyx12_accepts(x.text)
    assert ok, log
    first = system.get(f"/api/v1/billing/{paid.item_id}/claim", params={"format": "x12"})
    assert "REF*F8" not in first.text  # a paid claim is no replacement
    r = system.post(f"/api/v1/billing/{denied.item_id}/billed", json={"claim_number": "B2R"})
    assert r.status_code == 200


def test_same_trace_number_again_changes_nothing_and_says_so(make_client):
    system = _billing(make_client)
    paid, denied, partial = _billed(make_client, system)
    text = _remit(paid.item_id, denied.item_id, partial.item_id)
    assert system.post("/api/v1/billing/remittance", content=text, headers=X12).status_code == 200
    before = _counts()
    again = system.post("/api/v1/billing/remittance", content=text, headers=X12)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert "already posted" in again.json()["message"]
    assert len(again.json()["claims"]) == 4
    assert _counts() == before


def test_malformed_835_is_422_with_the_segment_and_stores_nothing(make_client):
    system = _billing(make_client)
    paid, denied, partial = _billed(make_client, system)
    text = _remit(paid.item_id, denied.item_id, partial.item_id)
    before = _counts()
    truncated = text[: text.index("CLP*CD999999")]
    r = system.post("/api/v1/billing/remittance", content=truncated, headers=X12)
    assert r.status_code == 422
    seg = r.json()["error"]["details"][0]["segment"]
    assert seg == truncated.count("~")  # the last segment it got before the end
    assert "segment" in r.json()["error"]["message"]
    wrong = text.replace("005010X221A1", "005010X222A1")
    r = system.post("/api/v1/billing/remittance", content=wrong, headers=X12)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["segment"] == 2  # the GS
    bad_svc = text.replace("SVC*HC:99213*125*125", "SVC*")
    r = system.post("/api/v1/billing/remittance", content=bad_svc, headers=X12)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["segment"] > 2
    r = system.post("/api/v1/billing/remittance", content=b"hello", headers=X12)
    assert r.status_code == 422
    assert _counts() == before
    with Session(get_engine()) as s:
        assert s.get(WorkItem, denied.item_id).status == "billed"  # no denial loop either
        failed = s.exec(
            select(AuditEvent).where(
                AuditEvent.action == "remittance", AuditEvent.outcome == "failed"
            )
        ).all()
        assert len(failed) == 4


def test_unknown_carc_is_kept_and_flagged(make_client):
    system = _billing(make_client)
    (held,) = _billed(make_client, system, coders=("coder1",))
    text = build_835(
        [
            RC(
                f"CD{held.item_id}",
                "1",
                125,
                100,
                "P7",
                [RL("99213", 125, 100, [("CO", "Z98", 25)])],
            ),
            RC("ACCT12345678", "1", 50, 50, "P8", [RL("99212", 50, 50)]),
        ],
        trace="TRACE-Z",
    )
    r = system.post("/api/v1/billing/remittance", content=text, headers=X12)
    assert r.status_code == 200, r.text
    claim, foreign = r.json()["claims"]
    # Another system's patient control number may be an account number: only its tail kept.
    assert (foreign["claim_number"], foreign["status"]) == ("********5678", "unmatched")
    assert claim["adjustments"] == [
        {"group": "CO", "reason": "Z98", "amount": 25, "line": 1, "known": False}
    ]
    assert claim["status"] == "partial"
    with Session(get_engine()) as s:
        adj = s.exec(select(RemitAdjustment).order_by(col(RemitAdjustment.id).desc())).first()
        assert (adj.reason, adj.known) == ("Z98", False)


def test_biller_uploads_on_the_page_and_coders_cannot_post(make_client):
    from tests.support.coding import signed_in

    system = _billing(make_client)
    paid, denied, partial = _billed(make_client, system)
    text = _remit(paid.item_id, denied.item_id, partial.item_id)
    biller = signed_in(make_client, "biller1", "biller")
    csrf = biller.headers["X-CSRF-Token"]
    empty = biller.post("/billing/remittance", data={"csrf_token": csrf, "text": "  "})
    assert empty.status_code == 422
    assert "Choose an 835 file, or paste one." in empty.text
    assert "request body" not in empty.text
    bad = biller.post(
        "/billing/remittance",
        data={"csrf_token": csrf},
        files={"file": ("remit.835", io.BytesIO(text[:300].encode()), "text/plain")},
    )
    assert bad.status_code == 422
    assert 'id="form-error"' in bad.text
    assert "segment" in bad.text
    page = biller.post(
        "/billing/remittance",
        data={"csrf_token": csrf},
        files={"file": ("remit.835", io.BytesIO(text.encode()), "text/plain")},
    )
    assert page.status_code == 200, page.text
    assert "Posted trace number TRACE0001" in page.text
    listed = biller.get("/billing/remittance", params={"status": "unmatched"})
    assert "CD999999" in listed.text
    assert f"CD{paid.item_id}" not in listed.text
    r = paid.client.post("/api/v1/billing/remittance", content=text, headers=X12)
    assert r.status_code == 403


def test_denial_report_by_carc_payer_queue_coder_with_csv(make_client):
    import csv

    from tests.support.coding import signed_in

    system = _billing(make_client)
    paid, denied, partial = _billed(make_client, system)
    text = _remit(paid.item_id, denied.item_id, partial.item_id)
    assert system.post("/api/v1/billing/remittance", content=text, headers=X12).status_code == 200
    boss = signed_in(make_client, "boss", "supervisor")
    r = boss.get("/api/v1/reports/denials", params={"by": "carc"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["claims"], body["denied"]) == (3, 2)  # the unmatched claim is no rate
    assert body["denied_amount"] == 175  # 125 denied whole + 50 of the partial (CO-45 is not)
    carcs = {g["key"]: g for g in body["groups"]}
    assert set(carcs) == {"97", "16", "50"}
    assert carcs["97"]["denied_amount"] == 100
    assert carcs["97"]["description"].startswith("Benefit included")
    assert body["top_codes"] == [{"code": "99213", "lines": 2, "denied_amount": 175}]
    coders = {g["key"]: g for g in boss.get("/api/v1/reports/denials?by=coder").json()["groups"]}
    assert coders["coder1"]["denied"] == 0
    assert (coders["coder2"]["denied"], coders["coder2"]["rate"]) == (1, 1.0)
    payers = boss.get("/api/v1/reports/denials?by=payer").json()["groups"]
    assert [(g["key"], g["claims"], g["denied"]) for g in payers] == [("ACME HEALTH PLAN", 3, 2)]
    queues = boss.get("/api/v1/reports/denials?by=queue").json()["groups"]
    assert [(g["key"], g["denied_amount"]) for g in queues] == [("default", 175)]
    assert boss.get("/api/v1/reports/denials?by=nope").status_code == 422
    later = boss.get("/api/v1/reports/denials", params={"since": "2999-01-01"}).json()
    assert (later["claims"], later["groups"], later["top_codes"]) == (0, [], [])
    today = boss.get("/api/v1/reports/denials", params={"until": "2999-01-01"}).json()
    assert today["denied"] == 2
    typo = boss.get("/reports/denials", params={"by": "payer", "since": "27/11/2026"})
    assert typo.status_code == 422
    assert 'id="err-since"' in typo.text  # at the field, the date as typed kept
    assert 'value="27/11/2026"' in typo.text
    page = boss.get("/reports/denials", params={"by": "payer"})
    assert page.status_code == 200
    assert 'id="denials-chart"' in page.text
    assert "ACME HEALTH PLAN" in page.text
    by_carc = boss.get("/reports/denials", params={"by": "carc"}).text
    assert ">By reason (CARC)</h2>" in by_carc  # the acronym stays capitalised
    assert "Denials by reason (CARC)</caption>" in by_carc
    bad = boss.get("/reports/denials", params={"by": "nope"})
    assert bad.status_code == 422
    assert 'id="report-error"' in bad.text
    rows = list(csv.DictReader(io.StringIO(boss.get("/reports/denials.csv?by=carc").text)))
    assert {"97", "all"} <= {row["key"] for row in rows}
    assert any(row["group_by"] == "top_code" and row["key"] == "99213" for row in rows)
    biller = signed_in(make_client, "biller1", "biller")
    assert biller.get("/reports/denials").status_code == 200
    assert paid.client.get("/api/v1/reports/denials").status_code == 403


def test_cli_billing_remit_posts_files_and_refuses_malformed(make_client, tmp_path):
    from typer.testing import CliRunner

    from server.cli import app

    system = _billing(make_client)
    paid, denied, partial = _billed(make_client, system)
    good = tmp_path / "good.835"
    good.write_text(_remit(paid.item_id, denied.item_id, partial.item_id, trace="CLI-1"))
    bad = tmp_path / "bad.835"
    bad.write_text(_remit(paid.item_id, denied.item_id, partial.item_id, trace="CLI-2")[:400])
    out = CliRunner().invoke(app, ["billing", "remit", str(good), str(bad)])
    assert out.exit_code == 1
    assert "Posted trace number CLI-1" in out.output
    assert f"CD{denied.item_id}\tdenied" in out.output
    assert "segment" in out.output
    with Session(get_engine()) as s:
        traces = s.exec(select(Remittance.trace_number)).all()
        assert traces == ["CLI-1"]
    again = CliRunner().invoke(app, ["billing", "remit", str(good)])
    assert again.exit_code == 0
    assert "already posted" in again.output
