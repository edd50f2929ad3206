"""A payer's reversal (CLP02 = 22) undoes its earlier answer on the claim: it is not a
payment, the earlier posting is marked reversed, nothing goes back to the coder and the
denial report counts neither; the remittance page pages its list, newest first."""

from __future__ import annotations

from sqlmodel import Session, select

from server.db import get_engine
from server.models import RemitClaim, Status, WorkItem
from tests.support.coding import signed_in
from tests.support.remit import RemitClaim as RC
from tests.support.remit import RemitLine as RL
from tests.support.remit import build_835
from tests.test_billing_remittance import X12, _billed, _billing, _pyx12_835


def test_a_reversal_undoes_the_earlier_posting_and_is_not_a_payment(make_client):
    system = _billing(make_client)
    first, second = _billed(make_client, system, coders=("coder1", "coder2"))
    a, b = f"CD{first.item_id}", f"CD{second.item_id}"
    original = build_835(
        [
            RC(a, "1", 125, 125, "PAYER-1", [RL("99213", 125, 125)]),
            RC(b, "1", 125, 125, "PAYER-2", [RL("99213", 125, 125)]),
        ],
        trace="TRACE-R1",
    )
    assert system.post("/api/v1/billing/remittance", content=original, headers=X12).is_success
    # The payer takes back claim a's payment and pays it again, less a contractual 25.
    again = build_835(
        [
            RC(a, "22", -125, -125, "PAYER-1", [RL("99213", -125, -125)]),
            RC(a, "1", 125, 100, "PAYER-1", [RL("99213", 125, 100, [("CO", "45", 25)])]),
        ],
        trace="TRACE-R2",
    )
    assert _pyx12_835(again)
    r = system.post("/api/v1/billing/remittance", content=again, headers=X12)
    assert r.status_code == 200, r.text
    got = r.json()["claims"]
    assert [(c["claim_number"], c["status"], c["paid"]) for c in got] == [
        (a, "reversed", -125),
        (a, "paid", 100),
    ]
    assert "1 reversed" in r.json()["message"]
    with Session(get_engine()) as s:
        rows = s.exec(
            select(RemitClaim).where(RemitClaim.claim_number == a).order_by(RemitClaim.id)
        ).all()
        posted, reversal, repaid = rows
        assert posted.reversed_by_id == reversal.id  # the first answer is undone
        assert reversal.reversed_by_id is None
        assert repaid.reversed_by_id is None
        assert reversal.denied_cents == 0
        item = s.get(WorkItem, first.item_id)
        assert item is not None
        assert item.status == Status.billed  # a reversal sends nothing back to the coder
    listed = system.get("/api/v1/billing/remittance/claims").json()["items"]
    assert [(c["status"], c["reversed"]) for c in listed if c["claim_number"] == a] == [
        ("paid", True),
        ("reversed", False),
        ("paid", False),
    ]
    assert system.get("/api/v1/billing/remittance/claims?status=reversed").json()["items"]
    # The report counts the answers in force: b and a's new payment, nothing denied.
    boss = signed_in(make_client, "boss", "supervisor")
    body = boss.get("/api/v1/reports/denials", params={"by": "payer"}).json()
    assert (body["claims"], body["denied"]) == (2, 0)
    biller = signed_in(make_client, "biller1", "biller")
    page = biller.get("/billing/remittance")
    assert page.status_code == 200
    assert f'id="reversed-{posted.id}"' in page.text


def test_a_reversal_of_nothing_posted_is_kept_and_changes_nothing(make_client):
    system = _billing(make_client)
    (held,) = _billed(make_client, system, coders=("coder1",))
    text = build_835(
        [RC(f"CD{held.item_id}", "22", -125, -125, "PAYER-7", [RL("99213", -125, -125)])],
        trace="TRACE-R3",
    )
    r = system.post("/api/v1/billing/remittance", content=text, headers=X12)
    assert r.status_code == 200, r.text
    assert r.json()["claims"][0]["status"] == "reversed"
    with Session(get_engine()) as s:
        assert all(c.reversed_by_id is None for c in s.exec(select(RemitClaim)).all())


def test_the_remittance_page_pages_newest_first(make_client):
    system = _billing(make_client)
    claims = [RC(f"X{n:05d}", "1", 10, 10, f"P{n}", [RL("99212", 10, 10)]) for n in range(1, 106)]
    r = system.post(
        "/api/v1/billing/remittance", content=build_835(claims, trace="TRACE-P"), headers=X12
    )
    assert r.status_code == 200, r.text
    biller = signed_in(make_client, "biller1", "biller")
    first = biller.get("/billing/remittance")
    assert first.status_code == 200
    assert first.text.count('class="remit-unmatched"') == 100
    assert first.text.index("P105<") < first.text.index("P104<")  # newest first
    assert ">P5<" not in first.text
    assert 'id="remit-older"' in first.text
    with Session(get_engine()) as s:
        ids = sorted(c.id for c in s.exec(select(RemitClaim)).all() if c.id is not None)
    older = biller.get(f"/billing/remittance?before={ids[5]}")
    assert older.text.count('class="remit-unmatched"') == 5
    assert ">P5<" in older.text
    assert ">P6<" not in older.text
    assert 'id="remit-older"' not in older.text
    assert 'id="remit-newest"' in older.text
