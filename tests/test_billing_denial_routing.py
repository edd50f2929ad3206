"""Denials go to a denials queue by rule (CARC group/reason, payer), else to the coder who
coded the claim; a denial of an item with no coder on record goes to the denials queue."""

from __future__ import annotations

from sqlmodel import Session, select

from server.config import get_settings
from server.db import get_engine
from server.models import ClaimReturn, Queue, Status, WorkItem
from tests.support.factories import make_user, sign_in
from tests.test_billing_api import _coded
from tests.test_billing_remittance import X12, _billed, _billing, _remit


def _post(system, held) -> dict[str, dict]:
    paid, denied, partial = held
    text = _remit(paid.item_id, denied.item_id, partial.item_id)
    r = system.post("/api/v1/billing/remittance", content=text, headers=X12)
    assert r.status_code == 200, r.text
    return {c["claim_number"]: c for c in r.json()["claims"]}


def _item(item_id: int) -> tuple[str, str, int | None]:
    with Session(get_engine()) as s:
        item = s.get(WorkItem, item_id)
        assert item is not None
        queue = s.get(Queue, item.queue_id)
        assert queue is not None
        return item.status, queue.name, item.lease_owner_id


def test_a_rule_on_the_carc_sends_the_denial_to_its_queue(make_client, monkeypatch):
    monkeypatch.setenv(
        "CHARTDESK_BILLING_DENIAL_RULES", '[{"group": "CO", "reason": "16", "queue": "info"}]'
    )
    get_settings.cache_clear()
    system = _billing(make_client)
    held = _billed(make_client, system)
    _, denied, partial = held
    claims = _post(system, held)
    # CO-97 + CO-16: the rule's queue; the partial denial (CO-50) still goes to its coder.
    d = claims[f"CD{denied.item_id}"]
    assert (d["returned_to_queue"], d["returned_to_coder"]) == ("info", False)
    assert _item(denied.item_id) == (Status.ready, "info", None)
    p = claims[f"CD{partial.item_id}"]
    assert (p["returned_to_queue"], p["returned_to_coder"]) == (None, True)
    status, queue, owner = _item(partial.item_id)
    assert (status, queue) == (Status.returned, "default")
    with Session(get_engine()) as s:
        back = s.exec(select(ClaimReturn).where(ClaimReturn.work_item_id == denied.item_id)).one()
        assert back.coder_id is None
        assert back.queue_id is not None
    # A coder of the denials queue takes it as the next item, with the payer's reasons.
    fixer = make_client()
    sign_in(fixer, make_user("fixer", "coder", queues=["info"]))
    r = fixer.post("/api/v1/work/next")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == denied.item_id
    page = fixer.get(f"/work/{denied.item_id}")
    assert page.status_code == 200
    assert "CO-16" in page.text


def test_a_payer_rule_and_the_default_queue_when_no_coder_is_on_record(make_client, monkeypatch):
    monkeypatch.setenv(
        "CHARTDESK_BILLING_DENIAL_RULES",
        '[{"payer": "Other Plan", "queue": "other"}, {"payer": "acme health plan", '
        '"reason": "50", "queue": "acme"}]',
    )
    get_settings.cache_clear()
    system = _billing(make_client)
    held = _billed(make_client, system)
    _, denied, partial = held
    with Session(get_engine()) as s:  # an item coded before coders were recorded
        item = s.get(WorkItem, denied.item_id)
        assert item is not None
        item.coded_by_id = None
        s.add(item)
        s.commit()
    claims = _post(system, held)
    assert claims[f"CD{denied.item_id}"]["returned_to_queue"] == "denials"
    assert _item(denied.item_id)[:2] == (Status.ready, "denials")
    assert claims[f"CD{partial.item_id}"]["returned_to_queue"] == "acme"
    assert _item(partial.item_id)[:2] == (Status.ready, "acme")


def test_billed_history_does_not_link_a_denied_claim_back_with_the_coder(make_client):
    system = _billing(make_client)
    held = _billed(make_client, system)
    paid, _, partial = held
    _post(system, held)
    biller = make_client()
    sign_in(biller, make_user("biller9", "biller"))
    page = biller.get("/billing/history")
    assert page.status_code == 200
    # The paid claim's page opens; the partly denied one is with its coder, where the claim
    # page answers 404, so the history says so instead of linking there.
    assert f'href="/billing/{paid.item_id}"' in page.text
    assert biller.get(f"/billing/{paid.item_id}").status_code == 200
    assert f'href="/billing/{partial.item_id}"' not in page.text
    assert "back with the coder (returned)" in page.text
    assert biller.get(f"/billing/{partial.item_id}").status_code == 404


def _uncoded(item_id: int) -> None:
    with Session(get_engine()) as s:  # an item coded before coders were recorded
        item = s.get(WorkItem, item_id)
        assert item is not None
        item.coded_by_id = None
        s.add(item)
        s.commit()


def test_a_manual_return_of_an_item_with_no_coder_goes_to_the_denials_queue(make_client):
    system = _billing(make_client)
    held = _coded(make_client, "coder7")
    _uncoded(held.item_id)
    r = system.post(f"/api/v1/billing/{held.item_id}/return", json={"reason": "wrong modifier"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["queue"]) == ("ready", "denials")
    assert _item(held.item_id) == (Status.ready, "denials", None)
    with Session(get_engine()) as s:
        back = s.exec(select(ClaimReturn).where(ClaimReturn.work_item_id == held.item_id)).one()
        assert (back.coder_id, back.queue_id is not None) == (None, True)
    # A coder of the denials queue takes it next and reads the biller's reason.
    fixer = make_client()
    sign_in(fixer, make_user("fixer2", "coder", queues=["denials"]))
    r = fixer.post("/api/v1/work/next")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == held.item_id
    assert "wrong modifier" in fixer.get(f"/work/{held.item_id}").text


def test_a_manual_return_without_a_coder_follows_a_catch_all_rule(make_client, monkeypatch):
    monkeypatch.setenv(
        "CHARTDESK_BILLING_DENIAL_RULES",
        '[{"reason": "16", "queue": "info"}, {"queue": "fixes"}]',
    )
    get_settings.cache_clear()
    system = _billing(make_client)
    held = _coded(make_client, "coder8")
    kept = _coded(make_client, "coder9")
    _uncoded(held.item_id)
    r = system.post(f"/api/v1/billing/{held.item_id}/return", json={"reason": "check payer"})
    assert r.status_code == 200, r.text
    # No CARC on a biller's return: the CO-16 rule cannot match; the catch-all does.
    assert _item(held.item_id)[:2] == (Status.ready, "fixes")
    # An item with a coder still goes back to that coder, as the contract says.
    r = system.post(f"/api/v1/billing/{kept.item_id}/return", json={"reason": "modifier"})
    assert (r.json()["status"], r.json()["queue"]) == ("returned", None)


def test_the_billers_page_says_where_an_item_with_no_coder_went(make_client):
    from tests.support.coding import signed_in

    held = _coded(make_client, "coder6")
    _uncoded(held.item_id)
    biller = signed_in(make_client, "biller6", "biller")
    r = biller.post(
        f"/billing/{held.item_id}/return",
        data={"reason": "missing modifier", "csrf_token": biller.headers["X-CSRF-Token"]},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/billing?done=queued"
    page = biller.get(r.headers["location"])
    assert "sent to a denials queue by the routing rules" in page.text
    assert _item(held.item_id)[:2] == (Status.ready, "denials")
