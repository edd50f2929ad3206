"""Engine, sessions and the one commit point."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import anyio
import psycopg
from fastapi import Depends
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from server.config import get_settings


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    # Writers queue (BEGIN IMMEDIATE) for up to 30 s: on a loaded 2-core machine four
    # concurrent ingests of one encounter waited past 10 s and failed "database is locked".
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # pysqlite's own BEGIN handling is disabled (isolation_level=None below) so that we
    # emit BEGIN ourselves. Nearly every request writes (session touch, audit event), and a
    # deferred transaction that reads and then writes can fail with SQLITE_BUSY_SNAPSHOT
    # instead of waiting; BEGIN IMMEDIATE makes writers queue on busy_timeout instead.
    # This serialises writers, which is SQLite's model anyway; PostgreSQL is the way to scale.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def build_engine(url: str) -> Engine:
    """Create an engine for `url` with SQLite's WAL/foreign keys or PostgreSQL pooling."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "isolation_level": None}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # Connections that outlive requests: at 64 coders pressing Next the old 10 (+20 opened
    # and closed per request) made a new PostgreSQL backend for almost every second claim.
    return create_engine(
        url, pool_size=get_settings().db_pool_size, max_overflow=10, pool_pre_ping=True
    )


# The database cannot be used right now: down, unreachable, out of connections, or a
# transient failure (deadlock, serialisation, SQLite busy). Requests answer 503 with
# Retry-After (server/web/handlers.py), never 500.
DB_UNAVAILABLE: tuple[type[Exception], ...] = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.TimeoutError,  # no pooled connection came free in time
    exc.DisconnectionError,
    psycopg.OperationalError,  # the hot routes' own connections (AsyncPool)
    psycopg.InterfaceError,
)
RETRY_AFTER_SECONDS = 5
UNAVAILABLE_MESSAGE = (
    "The service is unavailable right now: its database cannot be reached. "
    "Nothing was changed; please try again in a moment."
)


def db_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be used right now (503, not 500)."""
    return isinstance(error, DB_UNAVAILABLE)


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return build_engine(get_settings().database_url)


def is_sqlite(session: Session) -> bool:
    """Whether `session` talks to SQLite."""
    return session.get_bind().dialect.name == "sqlite"


AFTER_END = "after_end"


def after_end(session: Session, work: Callable[[Session], None]) -> None:
    """Run `work` in its own transaction once `session` has committed or rolled back.

    For what must survive the request's rollback (refused attempts, failed sign-ins).
    Running it after the request's transaction ends, rather than beside it, also keeps
    SQLite (one writer at a time) from waiting on the request's own write lock.
    """
    session.info.setdefault(AFTER_END, []).append(work)


def _run_after_end(session: Session) -> None:
    pending: list[Callable[[Session], None]] = session.info.pop(AFTER_END, [])
    if pending:
        with Session(get_engine(), expire_on_commit=False) as own:
            for work in pending:
                work(own)
            own.commit()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session committed on success and rolled back on error: the one commit rule.

    Requests use it through `get_session`; the CLI, sweeps and the sealer use it directly.
    """
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            _run_after_end(session)


def end_session(session: Session, *, ok: bool) -> None:
    """Commit (or roll back), run the after-end work, close: session_scope's exit, for a
    session made outside it (a request's, an access rule checked on its own)."""
    try:
        if ok:
            try:
                session.commit()
            except BaseException:
                session.rollback()
                raise
        else:
            session.rollback()
    finally:
        try:
            _run_after_end(session)
        finally:
            session.close()


async def _get_session() -> AsyncIterator[Session]:
    """session_scope for a request, with one thread hand-off instead of two (issue 23).

    Making a Session does no I/O (it connects on first use), so it is made on the event loop;
    only the end (commit or rollback, after-end work, close) goes to a worker thread, shielded
    from cancellation so that a dropped client cannot leave the transaction open.
    """
    session = Session(get_engine(), expire_on_commit=False)
    ok = False
    try:
        yield session
        ok = True
    finally:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(end_session, session, ok=ok)


# scope="function": the commit happens before the response is sent, so an audited read
# is on disk before its data leaves.
SESSION = Depends(_get_session, scope="function")


def get_session() -> Iterator[Session]:
    """A session outside requests: commits on success, rolls back on error."""
    with session_scope() as session:
        yield session


# ---------------------------------------------------------------- the hot routes' pool


class AsyncPool:
    """A few autocommit psycopg connections on one event loop, for one-statement routes.

    Next (`POST /api/v1/work/next`) is one call of a SQL function that checks the session,
    claims and audits, a coder's record view one that checks, locks, audits and reads the
    sealed chart, and a compliance officer's audit search one that checks, audits and
    reads; run here, on the event loop, each needs no worker thread, no ORM
    session and no second round trip for the commit (autocommit: the statement is its own
    transaction). Statements are prepared on each connection once. A connection that
    raised is closed, never reused: its state is unknown; after a connection-level error
    the idle ones are closed too, so a database restart costs one failed request (503), not
    one per pooled connection.
    """

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.slots = asyncio.Semaphore(size)
        # Statements that may run long (an audit search over a big log) take at most a third
        # of the connections, so that Next always has the rest.
        self.long_slots = asyncio.Semaphore(max(1, size // 3))

    async def fetchone(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Run one statement and answer its first row (None: no row)."""
        rows = await self.fetch(sql, params, first=True)
        return rows[0] if rows else None

    async def fetch(
        self, sql: str, params: dict[str, Any], *, first: bool = False, long: bool = False
    ) -> list[tuple[Any, ...]]:
        """Run one statement and answer its rows (`first`: only the first, if any; `long`: it
        may run long, so it waits for one of the connections such statements may hold)."""
        if long:
            async with self.long_slots:
                return await self._fetch(sql, params, first=first)
        return await self._fetch(sql, params, first=first)

    async def _fetch(
        self, sql: str, params: dict[str, Any], *, first: bool
    ) -> list[tuple[Any, ...]]:
        async with self.slots:
            conn = (
                self.idle.pop()
                if self.idle
                else await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            )
            try:
                cur = await conn.execute(sql, params, prepare=True)
                if first:
                    row = await cur.fetchone()
                    rows = [] if row is None else [row]
                else:
                    rows = await cur.fetchall()
            except BaseException as error:
                with anyio.CancelScope(shield=True):
                    await conn.close()
                    if isinstance(error, psycopg.OperationalError):
                        await self.drain()  # the server may have restarted: all are stale
                raise
            self.idle.append(conn)
            return rows

    async def drain(self) -> None:
        """Close the idle connections (the next calls connect afresh)."""
        idle, self.idle = self.idle, []
        for conn in idle:
            await conn.close()


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncPool]] = (
    weakref.WeakKeyDictionary()
)


def async_pool() -> AsyncPool | None:
    """This event loop's pool on the configured PostgreSQL (None on SQLite).

    One per loop and database URL: a server process has one loop; tests start many. Its
    size is a quarter of `db_pool_size` (7 by default), beside the engine's own pool (which
    the other routes use): Next holds a connection for one short statement, and with the
    defaults two processes (the Docker image's) stay within PostgreSQL's default
    `max_connections` of 100 (2 x (30 + 10 overflow + 1 sealer + 7) = 96).
    """
    settings = get_settings()
    url = settings.database_url
    if not url.startswith("postgresql"):
        return None
    pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    pool = pools.get(url)
    if pool is None:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        pool = pools[url] = AsyncPool(dsn, max(1, settings.db_pool_size // 4))
    return pool
