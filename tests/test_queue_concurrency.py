"""Two app processes, one PostgreSQL database, 32 coders pressing Next at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from server.db import get_engine
from server.models import Status, UserSession, WorkItem, WorkItemEvent, utcnow
from tests.support.factories import Account, fresh_totp, make_user
from tests.support.pgcluster import free_port
from tests.support.queue import make_items

QUEUES = ["q0", "q1", "q2", "q3"]
CODERS = 32
ITEMS = 1000


@contextmanager
def app_process(db_url: str, keyring: Path) -> Iterator[str]:
    """`python -m uvicorn server.main:create_app --factory` on a free port; yields its URL."""
    port = free_port()
    env = {
        **os.environ,
        "CHARTDESK_DATABASE_URL": db_url,
        "CHARTDESK_KEYRING_FILE": str(keyring),
        "CHARTDESK_ENV": "development",
        "CHARTDESK_SIGNIN_RATE_PER_MINUTE": "1000",
        "CHARTDESK_SIGNIN_ACCOUNT_RATE_PER_MINUTE": "100",
        "CHARTDESK_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "uvicorn",
            "server.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("app process did not start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _sign_in(client: httpx.Client, account: Account) -> None:
    r = client.post(
        "/api/v1/session",
        json={
            "username": account.username,
            "password": account.password,
            "totp": fresh_totp(account),
        },
    )
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]


@pytest.mark.pg_only
def test_32_coders_on_two_processes_claim_every_item_exactly_once(db_url, keyring):
    now = utcnow()
    for n, queue in enumerate(QUEUES):
        for priority in range(5):
            make_items(
                ITEMS // len(QUEUES) // 5,
                queue=queue,
                priority=priority,
                due_at=now + timedelta(days=n + 1),
            )
    # Coder i pulls from two neighbouring queues; every queue has 16 coders.
    membership = {f"coder{i:02d}": {QUEUES[i % 4], QUEUES[(i + 1) % 4]} for i in range(CODERS)}
    accounts = [make_user(name, "coder", queues=sorted(qs)) for name, qs in membership.items()]

    received: list[tuple[str, int, str]] = []
    problems: list[str] = []
    lock = threading.Lock()

    with app_process(db_url, keyring) as one, app_process(db_url, keyring) as two:
        urls = [one, two]
        start = threading.Barrier(CODERS)

        def coder(i: int, account: Account) -> None:
            # Next goes to one process, hold to the other: the lease spans processes.
            with httpx.Client(base_url=urls[i % 2], timeout=60) as client:
                _sign_in(client, account)
                other = urls[(i + 1) % 2]
                start.wait()
                while True:
                    r = client.post("/api/v1/work/next")
                    if r.status_code == 204:
                        return
                    if r.status_code != 200:
                        with lock:
                            problems.append(f"next {r.status_code}")
                        return
                    body = r.json()
                    with lock:
                        received.append((account.username, body["id"], body["queue"]))
                    h = client.post(
                        f"{other}/api/v1/work/{body['id']}/hold", json={"reason": "other"}
                    )
                    if h.status_code != 200:
                        with lock:
                            problems.append(f"hold {h.status_code}")
                        return

        threads = [threading.Thread(target=coder, args=(i, a)) for i, a in enumerate(accounts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert problems == []
    counts = Counter(item_id for _, item_id, _ in received)
    assert len(counts) == ITEMS, "every item was claimed"
    assert max(counts.values()) == 1, "no item was claimed twice"
    outside = [(who, q) for who, _, q in received if q not in membership[who]]
    assert outside == [], "nobody received an item outside their queues"
    assert len({who for who, _, _ in received}) > 1
    with Session(get_engine()) as s:
        statuses = Counter(s.exec(select(WorkItem.status)).all())
        claims = Counter(
            s.exec(select(WorkItemEvent.work_item_id).where(WorkItemEvent.action == "claim")).all()
        )
    assert statuses == {Status.on_hold: ITEMS}
    assert set(claims.values()) == {1}
    assert len(claims) == ITEMS


@pytest.mark.pg_only
def test_parallel_next_as_one_coder_never_exceeds_the_lease_limit(db_url, live_server):
    """8 tabs of one coder press Next at the same instant: with CHARTDESK_MAX_LEASED_ITEMS=1
    (the default) exactly one chart is leased, and every tab is handed that one."""
    make_items(20, queue="q0")
    account = make_user("tabs", "coder", queues=["q0"])
    with httpx.Client(base_url=live_server.url, timeout=60) as first:
        _sign_in(first, account)
        cookies, headers = dict(first.cookies), dict(first.headers)
    tabs = 8
    start = threading.Barrier(tabs)
    answers: list[tuple[int, int | None]] = []
    lock = threading.Lock()

    def tab() -> None:
        with httpx.Client(
            base_url=live_server.url, timeout=60, cookies=cookies, headers=headers
        ) as client:
            start.wait()
            r = client.post("/api/v1/work/next")
            with lock:
                answers.append((r.status_code, r.json()["id"] if r.status_code == 200 else None))

    for _ in range(3):  # a few rounds: the race is a matter of timing
        answers.clear()
        threads = [threading.Thread(target=tab) for _ in range(tabs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [status for status, _ in answers] == [200] * tabs
        with Session(get_engine()) as s:
            leased = s.exec(select(WorkItem.id).where(WorkItem.status == Status.in_progress)).all()
        assert len(leased) == 1, f"{len(leased)} charts leased to one coder, limit 1"
        assert {item_id for _, item_id in answers} == set(leased)
        with httpx.Client(base_url=live_server.url, cookies=cookies, headers=headers) as c:
            assert c.post(f"/api/v1/work/{leased[0]}/release").status_code == 200


@pytest.mark.pg_only
def test_next_from_the_page_and_the_api_at_once_never_deadlocks(db_url, live_server):
    """Tabs of one coder press Next at once, half on the page (the ordinary path) and half
    through the API (one statement), each time with the session due for its activity touch:
    both paths touch the session row before they lock the coder, so none of them waits on
    the other in a cycle (a deadlock would answer 503 after PostgreSQL's one-second check)."""
    make_items(20, queue="q0")
    account = make_user("tabs", "coder", queues=["q0"])
    with httpx.Client(base_url=live_server.url, timeout=60) as first:
        _sign_in(first, account)
        cookies, headers = dict(first.cookies), dict(first.headers)
    tabs = 8
    start = threading.Barrier(tabs)
    answers: list[int] = []
    lock = threading.Lock()

    def tab(page: bool) -> None:
        with httpx.Client(
            base_url=live_server.url, timeout=60, cookies=cookies, headers=headers
        ) as client:
            start.wait()
            r = client.post("/work/next" if page else "/api/v1/work/next", follow_redirects=False)
            with lock:
                answers.append(r.status_code)

    for _ in range(3):
        with Session(get_engine()) as s:  # the next request is due to touch the session
            row = s.exec(select(UserSession)).one()
            row.last_seen_at = utcnow() - timedelta(minutes=1)
            s.add(row)
            s.commit()
        answers.clear()
        threads = [threading.Thread(target=tab, args=(i % 2 == 0,)) for i in range(tabs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(answers) == [200] * (tabs // 2) + [303] * (tabs // 2)
        with Session(get_engine()) as s:
            leased = s.exec(select(WorkItem.id).where(WorkItem.status == Status.in_progress)).all()
        assert len(leased) == 1
        with httpx.Client(base_url=live_server.url, cookies=cookies, headers=headers) as c:
            assert c.post(f"/api/v1/work/{leased[0]}/release").status_code == 200
