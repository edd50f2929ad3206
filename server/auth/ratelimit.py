"""Rate limits: 429 with Retry-After.

Two counters, both fixed windows:

- `DbLimiter` counts in the `rate_limit_counter` table, so every process and every server
  shares the count. Used for sign-in (password and OpenID Connect callback), which is low
  volume: one upsert per attempt. It runs in its own short transaction so that an attempt is
  counted even when the sign-in itself is refused and rolled back.
- `LocalLimiter` counts in this process's memory. Used for service-token requests, which
  can be many per second. With `chartdesk serve --workers N` each worker counts on its own,
  so the effective limit is N times the configured one (documented in README).

Keys hold a kind and an IP, a username or a token id: never patient data.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from server.config import get_settings
from server.db import get_engine, is_sqlite
from server.errors import RateLimited
from server.models import RateLimitCounter

WINDOW_SECONDS = 60
MESSAGE = "Too many attempts. Please wait a minute and try again."


def _refuse(window_start: int, window: int, now: float, message: str = MESSAGE) -> RateLimited:
    retry = max(1, math.ceil(window_start + window - now))
    return RateLimited(message, headers={"Retry-After": str(retry)})


def _upsert_count(session: Session, key: str, window_start: int) -> int:
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(RateLimitCounter)
        .values(key=key, window_start=window_start, count=1)
        .on_conflict_do_update(
            index_elements=["key", "window_start"],
            set_={"count": col(RateLimitCounter.count) + 1},
        )
        .returning(col(RateLimitCounter.count))
    )
    count: int = session.execute(stmt).scalar_one()
    return count


class DbLimiter:
    """Fixed-window counters in the database (shared by every process)."""

    def __init__(self, window: int = WINDOW_SECONDS) -> None:
        self.window = window

    def hit(
        self,
        key: str,
        *,
        limit: int,
        session: Session | None = None,
        now: float | None = None,
    ) -> int:
        """Count one request under `key`; raise RateLimited when it is over `limit`.

        Counts in its own committed transaction. If `session` is given and is a SQLite
        session already inside a transaction (holding the one write lock), the count goes
        into that session instead, to avoid waiting on our own lock.
        """
        now = time.time() if now is None else now
        window_start = int(now // self.window) * self.window
        key = key[:200]
        if session is not None and is_sqlite(session) and session.in_transaction():
            count = _upsert_count(session, key, window_start)
        else:
            with Session(get_engine()) as own:
                count = _upsert_count(own, key, window_start)
                # Forget windows that have closed (small table: a few rows per key).
                own.execute(
                    delete(RateLimitCounter).where(
                        col(RateLimitCounter.window_start) < window_start - self.window
                    )
                )
                own.commit()
        if count > limit:
            raise _refuse(window_start, self.window, now)
        return count


class LocalLimiter:
    """Fixed-window counters in this process's memory (thread-safe)."""

    def __init__(self, window: int = WINDOW_SECONDS) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}

    def hit(self, key: str, *, limit: int, now: float | None = None) -> int:
        """Count one request under `key`; raise RateLimited when it is over `limit`."""
        now = time.time() if now is None else now
        window_start = int(now // self.window) * self.window
        with self._lock:
            start, count = self._counts.get(key, (window_start, 0))
            if start != window_start:
                start, count = window_start, 0
                if len(self._counts) > 10_000:
                    self._counts = {k: v for k, v in self._counts.items() if v[0] == window_start}
            count += 1
            self._counts[key] = (start, count)
        if count > limit:
            raise _refuse(window_start, self.window, now, "Too many requests. Slow down.")
        return count


signin_limiter = DbLimiter()


def check_signin(*, ip: str | None, username: str | None, session: Session | None = None) -> None:
    """Count one sign-in attempt per source IP and per account (raises RateLimited)."""
    settings = get_settings()
    if ip:
        signin_limiter.hit(
            f"signin-ip:{ip}", limit=settings.signin_rate_per_minute, session=session
        )
    if username:
        signin_limiter.hit(
            f"signin-user:{username.strip().lower()[:100]}",
            limit=settings.signin_account_rate_per_minute,
            session=session,
        )


def check_token_use(limiter: LocalLimiter, *, token_key: str, ip: str | None) -> None:
    """Count one bearer-token request per token and per source IP (raises RateLimited)."""
    settings = get_settings()
    if ip:
        limiter.hit(f"token-ip:{ip}", limit=settings.token_ip_rate_per_minute)
    limiter.hit(f"token:{token_key}", limit=settings.token_rate_per_minute)
