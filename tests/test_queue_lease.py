"""Leases: heartbeat, release, hold, resume, expiry, the sweep, and late requests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from server.db import get_engine
from server.models import AuditEvent, Status, WorkItem, WorkItemEvent
from server.models.base import utcnow
from server.queue import service as queue_service
from tests.support.factories import make_user, sign_in
from tests.support.queue import events, expire, item, make_items


@pytest.fixture
def coder_client(make_client):
    coder = make_user("cora", "coder", queues=["default"])
    client = make_client()
    sign_in(client, coder)
    return coder, client


def _claim(client) -> int:
    r = client.post("/api/v1/work/next")
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def test_heartbeat_extends_the_lease(coder_client):
    _, client = coder_client
    make_items(1)
    item_id = _claim(client)
    before = item(item_id).lease_expires_at
    r = client.post(f"/api/v1/work/{item_id}/heartbeat")
    assert r.status_code == 200
    after = item(item_id).lease_expires_at
    assert before is not None
    assert after is not None
    assert after >= before


def test_an_expired_lease_answers_409_changes_nothing_and_the_sweep_returns_it(coder_client):
    coder, client = coder_client
    make_items(1)
    item_id = _claim(client)
    expire(item_id)
    stale = item(item_id)
    for path in ("heartbeat", "release"):
        r = client.post(f"/api/v1/work/{item_id}/{path}")
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "lease_expired"
    r = client.post(f"/api/v1/work/{item_id}/hold", json={"reason": "other"})
    assert r.status_code == 409
    unchanged = item(item_id)
    assert unchanged.status == Status.in_progress
    assert unchanged.lease_expires_at == stale.lease_expires_at
    # The sweep gives it back to the queue, and records who lost it.
    with Session(get_engine()) as s:
        assert queue_service.sweep_expired(s) == [item_id]
        s.commit()
    back = item(item_id)
    assert back.status == Status.ready
    assert back.lease_owner_id is None
    assert events(item_id)[-1].action == "expire"
    # Still 409 for the old holder after the sweep, never 404.
    r = client.post(f"/api/v1/work/{item_id}/heartbeat")
    assert r.status_code == 409
    assert item(item_id).status == Status.ready


def test_next_sweeps_expired_leases_first(make_client):
    make_items(1)
    first = make_user("cora", "coder", queues=["default"])
    second = make_user("dev", "coder", queues=["default"])
    a, b = make_client(), make_client()
    sign_in(a, first)
    sign_in(b, second)
    item_id = _claim(a)
    assert b.post("/api/v1/work/next").status_code == 204
    expire(item_id)
    assert _claim(b) == item_id
    # The first coder's late requests change nothing: the item stays with the second.
    r = a.post(f"/api/v1/work/{item_id}/release")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "lease_expired"
    assert item(item_id).lease_owner_id == second.user_id
    assert b.post(f"/api/v1/work/{item_id}/heartbeat").status_code == 200
    # Next for the first coder does not hand back a lease that is not theirs.
    assert a.post("/api/v1/work/next").status_code == 204


def test_release_gives_the_item_back(coder_client):
    _, client = coder_client
    make_items(1)
    item_id = _claim(client)
    r = client.post(f"/api/v1/work/{item_id}/release")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"
    assert item(item_id).status == Status.ready
    assert client.get("/api/v1/work/mine").json()["items"] == []
    assert [e.action for e in events(item_id)] == ["claim", "release"]
    with Session(get_engine()) as s:
        actions = s.exec(select(AuditEvent.action).where(AuditEvent.work_item_id == item_id)).all()
    assert list(actions) == ["claim", "release"]


def test_hold_keeps_the_item_in_my_list_and_resume_takes_it_back(coder_client):
    coder, client = coder_client
    make_items(2)
    item_id = _claim(client)
    bad = client.post(f"/api/v1/work/{item_id}/hold", json={"reason": "lunch"})
    assert bad.status_code == 422
    secret_note = "Patient says the MRI was at St Elsewhere"
    r = client.post(
        f"/api/v1/work/{item_id}/hold",
        json={"reason": "physician query", "note": secret_note},
    )
    assert r.status_code == 200
    assert r.json()["status"] == "on_hold"
    assert r.json()["hold_reason"] == "physician query"
    mine = client.get("/api/v1/work/mine").json()["items"]
    assert [(i["id"], i["status"]) for i in mine] == [(item_id, "on_hold")]
    assert mine[0]["age_seconds"] >= 0
    # A held item does not count against the lease limit: Next gives the other one.
    other = _claim(client)
    assert other != item_id
    # The note is not stored anywhere in clear.
    with Session(get_engine()) as s:
        reasons = s.exec(select(WorkItemEvent.reason)).all()
        details = s.exec(select(AuditEvent.detail)).all()
    assert all(secret_note not in (x or "") for x in [*reasons, *details])
    held = [e for e in events(item_id) if e.action == "hold"][0]
    assert held.reason == "physician query"
    assert held.actor_id == coder.user_id
    r = client.post(f"/api/v1/work/{item_id}/resume")
    assert r.status_code == 200
    assert r.json()["status"] == "in_progress"
    assert item(item_id).lease_owner_id == coder.user_id


def test_sweeps_at_once_return_each_item_once(db_url):
    ids = make_items(120)
    coder = make_user("cora", "coder", queues=["default"])
    with Session(get_engine()) as s:
        for item_id in ids:
            row = s.get(WorkItem, item_id)
            assert row is not None
            row.status = Status.in_progress
            row.lease_owner_id = coder.user_id
            row.lease_expires_at = utcnow()
            s.add(row)
        s.commit()
    got: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def sweep() -> None:
        start.wait()
        while True:
            with Session(get_engine()) as s:
                returned = queue_service.sweep_expired(s)
                s.commit()
            with lock:
                got.extend(returned)
            if not returned:
                return

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(ids)
    with Session(get_engine()) as s:
        expired = s.exec(select(WorkItemEvent.work_item_id).where(WorkItemEvent.action == "expire"))
        assert Counter(expired.all()) == Counter(ids)


@pytest.mark.pg_only
def test_sweep_from_two_processes_returns_each_item_once(db_url, keyring):
    ids = make_items(1500)
    coder = make_user("cora", "coder", queues=["default"])
    with Session(get_engine()) as s:
        s.exec(  # type: ignore[call-overload]
            update(WorkItem).values(
                status=Status.in_progress,
                lease_owner_id=coder.user_id,
                lease_expires_at=utcnow(),
            )
        )
        s.commit()
    env = {**os.environ, "CHARTDESK_DATABASE_URL": db_url, "CHARTDESK_KEYRING_FILE": str(keyring)}
    procs = [
        subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "server.cli", "queue", "sweep"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    counts = [int(o.split()[1]) for o in outputs]
    assert sum(counts) == len(ids)
    with Session(get_engine()) as s:
        expired = s.exec(select(WorkItemEvent.work_item_id).where(WorkItemEvent.action == "expire"))
        assert Counter(expired.all()) == Counter(ids)
        statuses = s.exec(select(WorkItem.status)).all()
    assert set(statuses) == {Status.ready}
