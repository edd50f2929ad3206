"""A returned item (a billing return, a payer's denial) shows the coder why on its page,
read through the audited "returned" view, beside Resume: before the coder takes it back."""

from __future__ import annotations

from sqlmodel import Session, select

from server.db import get_engine
from server.models import AuditEvent
from tests.support.coding import signed_in
from tests.support.factories import make_token, make_user, sign_in
from tests.support.remit import RemitClaim as RC
from tests.support.remit import RemitLine as RL
from tests.support.remit import build_835
from tests.test_billing_api import _coded


def _events(item_id: int) -> list[tuple[str, str, str | None]]:
    with Session(get_engine()) as s:
        rows = s.exec(
            select(AuditEvent.action, AuditEvent.outcome, AuditEvent.detail)
            .where(AuditEvent.work_item_id == item_id)
            .order_by(AuditEvent.id)
        ).all()
        return [(a, o, d) for a, o, d in rows]


def test_the_return_note_shows_beside_resume_before_the_coder_takes_it_back(make_client):
    held = _coded(make_client)
    biller = signed_in(make_client, "biller1", "biller")
    r = biller.post(
        f"/api/v1/billing/{held.item_id}/return", json={"reason": "add modifier 59 <b>"}
    )
    assert r.status_code == 200, r.text
    before = len(_events(held.item_id))
    page = held.client.get(f"/work/{held.item_id}")
    assert page.status_code == 200, page.text
    assert 'id="returned-reason"' in page.text
    assert "add modifier 59 &lt;b&gt;" in page.text  # the sealed note, opened and escaped
    assert 'id="resume"' in page.text
    assert page.text.index('id="returned-reason"') < page.text.index('id="resume"')
    assert 'id="codes-form"' not in page.text  # the chart itself waits for Resume
    assert 'id="documents"' not in page.text
    # Read through the audited view: a view-record event for this item, view "returned".
    events = _events(held.item_id)[before:]
    assert ("view-record", "success", "view=returned") in events, events
    # Another coder: not theirs, a 404, audited as denied, and no note.
    other = make_client()
    sign_in(other, make_user("coder2", "coder", queues=["default"]))
    refused = other.get(f"/work/{held.item_id}")
    assert refused.status_code == 404
    assert "modifier 59" not in refused.text
    assert any(o == "denied" for _a, o, _d in _events(held.item_id)[before:])
    # Resume still takes it back and the note stays in the code panel.
    assert held.client.post(f"/api/v1/work/{held.item_id}/resume").status_code == 200
    panel = held.client.get(f"/work/{held.item_id}")
    assert 'id="codes-form"' in panel.text
    assert "add modifier 59 &lt;b&gt;" in panel.text


def test_a_payer_denial_shows_its_carc_and_rarc_before_resume(make_client):
    system = make_client()
    system.headers["Authorization"] = f"Bearer {make_token('billing-system', 'billing')}"
    held = _coded(make_client)
    assert system.get(f"/api/v1/billing/{held.item_id}/claim").status_code == 200
    r = system.post(f"/api/v1/billing/{held.item_id}/billed", json={"claim_number": "B1"})
    assert r.status_code == 200, r.text
    text = build_835(
        [
            RC(
                f"CD{held.item_id}",
                "4",
                125,
                0,
                "PAYER-2",
                [RL("99213", 125, 0, [("CO", "97", 100), ("CO", "16", 25)], ["N130", "M51"])],
            )
        ]
    )
    r = system.post(
        "/api/v1/billing/remittance", content=text, headers={"Content-Type": "application/edi-x12"}
    )
    assert r.status_code == 200, r.text
    page = held.client.get(f"/work/{held.item_id}")
    assert page.status_code == 200, page.text
    assert 'id="denial"' in page.text
    for seen in ("CO-97", "CO-16", "N130", "PAYER-2", 'id="resume"'):
        assert seen in page.text, seen
    assert 'id="codes-form"' not in page.text
