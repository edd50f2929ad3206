"""PostgreSQL goes away: every request answers 503 with Retry-After and a page saying the
service is unavailable (JSON for /api, HTML for pages), and the app recovers by itself when
the database is back. Each test runs its own cluster, so stopping it harms no other test.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from server.migrate import upgrade
from tests.conftest import reset_caches
from tests.support.factories import make_encounter, make_user, sign_in
from tests.support.pgcluster import Cluster, find_pg_bin, start_cluster


@pytest.fixture
def own_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A PostgreSQL cluster of this test's own, migrated; the app's settings point at it."""
    wanted = os.environ.get("CHARTDESK_TEST_DB", "sqlite,postgresql")
    if "postgresql" not in wanted:
        pytest.skip("PostgreSQL tests not wanted (CHARTDESK_TEST_DB)")
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL binaries not found: the outage tests are SKIPPED")
    cluster = start_cluster(fast=True)
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE chartdesk")
        upgrade(cluster.url("chartdesk"))
        monkeypatch.setenv("CHARTDESK_DATABASE_URL", cluster.url("chartdesk"))
        monkeypatch.setenv("CHARTDESK_AUDIT_SEAL_INTERVAL_SECONDS", "0")
        reset_caches()
        yield cluster
    finally:
        reset_caches()
        cluster.stop()


@pytest.fixture
def outage_client(own_cluster: Cluster) -> Iterator[TestClient]:
    from server.main import create_app

    with TestClient(create_app(), base_url="http://testserver") as c:
        yield c


def _unavailable_json(r: Any) -> None:
    assert r.status_code == 503, r.text[:300]
    assert int(r.headers["retry-after"]) > 0
    error = r.json()["error"]
    assert error["code"] == "unavailable"
    assert "unavailable" in error["message"]


def test_database_down_answers_503_with_retry_after_then_recovers(
    own_cluster: Cluster, outage_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = outage_client
    # The one-statement routes (Next, the record view, the audit search) and ordinary ones.
    make_encounter()
    sign_in(client, make_user("ann", "coder", "compliance", queues=["default"]))
    assert client.get("/api/v1/me").status_code == 200
    item = client.post("/api/v1/work/next").json()["id"]
    assert client.get(f"/api/v1/work/{item}").status_code == 200
    assert client.get("/api/v1/audit/events").status_code == 200
    own_cluster.halt()
    try:
        caplog.set_level(logging.INFO, logger="chartdesk.access")
        _unavailable_json(client.get("/api/v1/me"))
        _unavailable_json(client.post("/api/v1/work/next"))
        _unavailable_json(client.get(f"/api/v1/work/{item}"))
        _unavailable_json(client.get("/api/v1/work/0"))  # a bad id: the access rule first
        _unavailable_json(client.get("/api/v1/audit/events"))
        page = client.get("/home")
        assert page.status_code == 503
        assert page.headers["content-type"].startswith("text/html")
        assert int(page.headers["retry-after"]) > 0
        assert "Service unavailable" in page.text
        assert "try again" in page.text
        fragment = client.get("/home", headers={"HX-Request": "true"})
        assert fragment.status_code == 503
        assert "unavailable" in fragment.text
        assert client.get("/readyz").status_code == 503
        lines = [r.getMessage() for r in caplog.records if r.name == "chartdesk.access"]
        assert any(line.startswith("GET /api/v1/me 503 ") for line in lines), lines
        assert not any(" 500 " in line for line in lines), lines
    finally:
        own_cluster.start()
    # Back without restarting the app: the pool drops its dead connections.
    assert client.get("/api/v1/me").status_code == 200
    assert client.get(f"/api/v1/work/{item}").status_code == 200
    assert client.get("/api/v1/audit/events").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_drill_postgres_stopped_under_load_then_restarted(
    own_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Coders keep pressing Next while PostgreSQL is stopped and started again: every answer
    in between is a 503 (never a 500 or a dropped connection), and the same app process
    serves again once the database is back, sealer included."""
    import threading
    import time

    import httpx

    from server.audit import chain
    from server.main import create_app
    from tests.conftest import LiveServer
    from tests.support.queue import make_items
    from tests.test_queue_concurrency import _sign_in

    monkeypatch.setenv("CHARTDESK_AUDIT_SEAL_INTERVAL_SECONDS", "0.2")
    reset_caches()
    make_items(200, queue="q0")
    accounts = [make_user(f"drill{i}", "coder", queues=["q0"]) for i in range(4)]
    seen: list[tuple[float, int | str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    with LiveServer(create_app()) as server:
        clients = []
        for account in accounts:  # signed in before the load starts (sign-in is slow)
            client = httpx.Client(base_url=server.url, timeout=30)
            _sign_in(client, account)
            clients.append(client)

        def coder(client: httpx.Client) -> None:
            while not stop.is_set():
                try:
                    r = client.post("/api/v1/work/next")
                    outcome: int | str = r.status_code
                    if r.status_code == 200:
                        client.post(f"/api/v1/work/{r.json()['id']}/release")
                    elif r.status_code == 503:
                        assert int(r.headers["retry-after"]) > 0
                except (httpx.TransportError, AssertionError) as exc:
                    outcome = type(exc).__name__
                with lock:
                    seen.append((time.monotonic(), outcome))
                time.sleep(0.02)

        threads = [threading.Thread(target=coder, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while sum(1 for _, o in seen if o == 200) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        down_at = time.monotonic()
        own_cluster.halt()
        time.sleep(1.5)
        own_cluster.start()
        up_at = time.monotonic()
        time.sleep(2.5)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        for client in clients:
            client.close()
        outcomes = {o for _, o in seen}
        assert outcomes <= {200, 503}, outcomes  # no 500, no dropped connection
        assert any(o == 503 for t, o in seen if down_at <= t <= up_at), "503 while down"
        assert any(o == 200 for t, o in seen if t < down_at)
        settled = [o for t, o in seen if t > up_at + 1.0]
        assert settled, "requests went on after the restart"
        assert set(settled) == {200}, settled  # recovered without restarting the app
        with httpx.Client(base_url=server.url) as fresh:
            assert fresh.get("/readyz").status_code == 200
    assert chain.verify().ok
