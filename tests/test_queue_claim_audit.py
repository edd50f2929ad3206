"""A Next leaves the same trail on both backends (on PostgreSQL it is one call of the
`chartdesk_claim` function, migration 0021): the item's history, the audit rows the sealer
chains, and who/where/which request they name (issue 23)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from server.audit import chain
from server.db import get_engine
from server.models import AuditEvent
from tests.support.factories import make_user, sign_in
from tests.support.queue import events, expire, item, make_items


def _audit(item_id: int) -> list[AuditEvent]:
    with Session(get_engine()) as s:
        return list(
            s.exec(
                select(AuditEvent)
                .where(AuditEvent.work_item_id == item_id)
                .order_by(col(AuditEvent.id))
            )
        )


def test_claims_and_the_sweep_are_audited_and_the_chain_verifies(make_client):
    make_items(1)
    first = make_user("cora", "coder", queues=["default"])
    second = make_user("dev", "coder", queues=["default"])
    a, b = make_client(), make_client()
    sign_in(a, first)
    sign_in(b, second)
    r = a.post("/api/v1/work/next", json={"queue": "default"})
    assert r.status_code == 200, r.text
    item_id = r.json()["id"]
    assert r.json()["lease_owner"] == "cora"
    assert r.json()["queue"] == "default"
    first_request = r.headers["x-request-id"]
    expire(item_id)
    r = b.post("/api/v1/work/next")  # sweeps the expired lease, then claims it
    assert r.status_code == 200, r.text
    assert r.json()["id"] == item_id
    assert r.json()["lease_owner"] == "dev"
    assert item(item_id).lease_owner_id == second.user_id

    history = [(e.action, e.owner_id, (e.reason or "")[:13]) for e in events(item_id)]
    assert history[-3:] == [
        ("claim", first.user_id, ""),
        ("expire", None, "lease expired"),
        ("claim", second.user_id, ""),
    ]
    trail = [(e.action, e.actor, e.actor_kind, e.detail) for e in _audit(item_id)]
    assert trail == [
        ("claim", "cora", "user", None),
        ("release", "lease-sweep", "system", "lease expired"),
        ("claim", "dev", "user", None),
    ]
    claim = _audit(item_id)[0]
    assert claim.request_id == first_request
    assert claim.actor_roles == "coder"
    assert claim.purpose == "TREAT"
    assert claim.source_ip

    assert chain.seal_pending().sealed >= 3
    report = chain.verify()
    assert report.ok, report.first_bad


def test_next_on_a_queue_one_is_not_in_is_refused_and_claims_nothing(make_client):
    make_items(1, queue="other")
    coder = make_user("cora", "coder", queues=["default"])
    client = make_client()
    sign_in(client, coder)
    r = client.post("/api/v1/work/next", json={"queue": "other"})
    assert r.status_code == 403
    r = client.post("/api/v1/work/next", json={"queue": "nowhere"})
    assert r.status_code == 404
    assert client.post("/api/v1/work/next").status_code == 204
