"""Get next: order, queues, the one-lease limit, and no double claims."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlmodel import Session

from server.db import get_engine
from server.models import Status, utcnow
from server.queue import service as queue_service
from tests.support.factories import make_user, sign_in
from tests.support.queue import ensure_queue, events, item, make_items, principal_of


def _next(client, **body):
    return client.post("/api/v1/work/next", json=body or None)


def _hold(client, item_id):
    r = client.post(f"/api/v1/work/{item_id}/hold", json={"reason": "other", "note": ""})
    assert r.status_code == 200, r.text


def test_next_follows_priority_then_due_date_then_age(make_client):
    now = utcnow()
    late_low = make_items(queue="default", priority=0, due_at=now + timedelta(days=3))[0]
    urgent_late = make_items(queue="default", priority=5, due_at=now + timedelta(days=5))[0]
    urgent_soon = make_items(queue="default", priority=5, due_at=now + timedelta(days=1))[0]
    no_due = make_items(queue="default", priority=0)[0]
    soon_low_old = make_items(queue="default", priority=0, due_at=now + timedelta(days=1))[0]
    soon_low_new = make_items(queue="default", priority=0, due_at=now + timedelta(days=1))[0]
    coder = make_user("cora", "coder", queues=["default"])
    client = make_client()
    sign_in(client, coder)
    got = []
    while (r := _next(client)).status_code == 200:
        got.append(r.json()["id"])
        _hold(client, r.json()["id"])
    assert r.status_code == 204
    assert got == [urgent_soon, urgent_late, soon_low_old, soon_low_new, late_low, no_due]


def test_next_while_holding_returns_the_item_held(make_client):
    first, _second = make_items(2)
    coder = make_user("cora", "coder", queues=["default"])
    client = make_client()
    sign_in(client, coder)
    r = _next(client)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == first
    assert body["status"] == "in_progress"
    assert body["queue"] == "default"
    assert body["lease_owner"] == "cora"
    assert body["lease_expires_at"]
    again = _next(client)
    assert again.status_code == 200
    assert again.json()["id"] == first
    mine = client.get("/api/v1/work/mine").json()
    assert [i["id"] for i in mine["items"]] == [first]
    assert mine["next_cursor"] is None
    # Exactly one claim was recorded, with who and when.
    claims = [e for e in events(first) if e.action == "claim"]
    assert len(claims) == 1
    assert claims[0].actor_id == coder.user_id
    assert (claims[0].from_status, claims[0].to_status) == ("ready", "in_progress")


def test_nothing_waiting_answers_204(make_client):
    coder = make_user("cora", "coder", queues=["default"])
    client = make_client()
    sign_in(client, coder)
    r = _next(client)
    assert r.status_code == 204
    assert r.content == b""


def test_only_the_callers_queues(make_client):
    ensure_queue("cardiology")
    ensure_queue("ortho")
    theirs = make_items(3, queue="ortho", priority=9)
    mine = make_items(2, queue="cardiology")
    coder = make_user("cora", "coder", queues=["cardiology"])
    client = make_client()
    sign_in(client, coder)
    got = []
    while (r := _next(client)).status_code == 200:
        got.append(r.json()["id"])
        _hold(client, r.json()["id"])
    assert sorted(got) == sorted(mine)
    assert all(item(i).status == Status.ready for i in theirs)
    named = _next(client, queue="ortho")
    assert named.status_code == 403
    assert _next(client, queue="no-such-queue").status_code == 404


def test_named_queue(make_client):
    ensure_queue("ortho")
    default_item = make_items(1, queue="default", priority=9)[0]
    ortho_item = make_items(1, queue="ortho")[0]
    coder = make_user("cora", "coder", queues=["default", "ortho"])
    client = make_client()
    sign_in(client, coder)
    r = _next(client, queue="ortho")
    assert r.json()["id"] == ortho_item
    assert item(default_item).status == Status.ready


def test_a_coder_with_no_queues_gets_nothing(make_client):
    make_items(2)
    coder = make_user("cora", "coder")
    client = make_client()
    sign_in(client, coder)
    assert _next(client).status_code == 204


def test_concurrent_claims_in_one_process_never_share_an_item(db_url):
    ids = make_items(60)
    names = [f"coder{i}" for i in range(6)]
    for name in names:
        make_user(name, "coder", queues=["default"])
    got: list[tuple[str, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        actor = principal_of(name)
        try:
            while True:
                with Session(get_engine(), expire_on_commit=False) as s:
                    claimed = queue_service.claim_next(s, actor=actor)
                    if claimed is None:
                        s.commit()
                        return
                    item_id = claimed.item.id
                    assert item_id is not None
                    queue_service.hold(s, actor=actor, work_item_id=item_id, reason="other")
                    s.commit()
                with lock:
                    got.append((name, item_id))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counts = Counter(i for _, i in got)
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) == {1}


@pytest.mark.parametrize("limit", [2])
def test_the_lease_limit_is_a_setting(make_client, monkeypatch, limit):
    from server.config import get_settings

    monkeypatch.setenv("CHARTDESK_MAX_LEASED_ITEMS", str(limit))
    get_settings.cache_clear()
    ids = make_items(3)
    coder = make_user("cora", "coder", queues=["default"])
    client = make_client()
    sign_in(client, coder)
    got = {_next(client).json()["id"] for _ in range(4)}
    assert got == set(ids[:limit])
