"""The floor of our own stack (issue 23's second anchor): FastAPI + uvicorn (2 workers,
httptools) with one endpoint, `POST /api/v1/work/next`, that checks the caller's session row
and does the claim, the item event and the audit row in ONE SQL statement over psycopg.

It reads the same session cookie as Chartdesk (the row id is the SHA-256 of the cookie
value), claims from the named queue with the same `SKIP LOCKED` head-of-queue query, and
writes the same item event and audit row. No settings, no ORM, no dependency solving, no
middleware: what is left is the framework, the driver and PostgreSQL.
Run: BENCH_DSN=... uvicorn bench.minimal_app:app --workers 2 --http httptools
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request, Response

POOL = 16  # connections per worker
COOKIE = "chartdesk_session"

CLAIM = """
WITH s AS (
    SELECT user_id FROM user_session WHERE id = %(sid)s
), c AS (
    UPDATE work_item SET status = 'in_progress', lease_owner_id = (SELECT user_id FROM s),
        lease_expires_at = now() + interval '20 minutes', updated_at = now()
    WHERE id = (
        SELECT w.id FROM work_item w
        WHERE w.queue_id = (SELECT id FROM work_queue WHERE name = %(queue)s)
            AND w.status = 'ready' AND EXISTS (SELECT 1 FROM s)
        ORDER BY w.priority DESC, w.due_at, w.id LIMIT 1 FOR UPDATE SKIP LOCKED
    ) AND status = 'ready'
    RETURNING id, queue_id, status, priority, due_at, lease_owner_id, lease_expires_at,
        created_at, updated_at
), e AS (
    INSERT INTO work_item_event (work_item_id, at, actor_id, action, from_status, to_status,
        owner_id)
    SELECT id, now(), lease_owner_id, 'claim', 'ready', 'in_progress', lease_owner_id FROM c
), a AS (
    INSERT INTO audit_event (time, action, outcome, actor, actor_kind, actor_roles,
        work_item_id, source_ip, request_id, purpose)
    SELECT now(), 'claim', 'success', u.username, 'user', 'coder', c.id, %(ip)s, %(rid)s,
        'TREAT'
    FROM c JOIN app_user u ON u.id = c.lease_owner_id
)
SELECT (SELECT count(*) FROM s), c.id, c.status, c.priority, c.due_at, c.lease_expires_at,
    c.created_at, c.updated_at
FROM (SELECT 1) AS one LEFT JOIN c ON true
"""


class Pool:
    """A fixed set of autocommit connections handed out through a queue."""

    def __init__(self) -> None:
        self.free: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()

    async def open(self, dsn: str) -> None:
        for _ in range(POOL):
            self.free.put_nowait(await psycopg.AsyncConnection.connect(dsn, autocommit=True))


pool = Pool()


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    await pool.open(os.environ["BENCH_DSN"])
    yield


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """For the bench's start-up wait."""
    return {"status": "ok"}


@app.post("/api/v1/work/next")
async def claim(request: Request) -> Response:
    """Session check + claim + item event + audit row: one statement, one round trip."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return Response(status_code=401)
    body = await request.json()
    conn = await pool.free.get()
    try:
        cur = await conn.execute(
            CLAIM,
            {
                "sid": hashlib.sha256(cookie.encode()).hexdigest(),
                "queue": body.get("queue"),
                "ip": request.client.host if request.client else None,
                "rid": os.urandom(16).hex(),
            },
            prepare=True,
        )
        row = await cur.fetchone()
    finally:
        pool.free.put_nowait(conn)
    assert row is not None  # noqa: S101
    if not row[0]:
        return Response(status_code=401)
    if row[1] is None:
        return Response(status_code=204)
    item = {
        "id": row[1],
        "queue": body.get("queue"),
        "status": row[2],
        "priority": row[3],
        "due_at": row[4].isoformat() if row[4] else None,
        "lease_expires_at": row[5].isoformat(),
        "created_at": row[6].isoformat(),
        "updated_at": row[7].isoformat(),
    }
    return Response(json.dumps(item), media_type="application/json")
