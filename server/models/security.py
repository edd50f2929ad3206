"""Hardening tables: sign-in rate-limit counters and pending OpenID Connect sign-ins."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class RateLimitCounter(SQLModel, table=True):
    """Requests counted in one fixed window for one key (e.g. `signin-ip:10.0.0.7`).

    Shared by every process through the database; old windows are deleted as new ones open.
    """

    __tablename__ = "rate_limit_counter"

    key: str = Field(primary_key=True, max_length=200)
    window_start: int = Field(primary_key=True)  # epoch seconds, a multiple of the window
    count: int = 0


class OidcTransaction(SQLModel, table=True):
    """One sign-in started at the identity provider and not yet finished.

    Kept on the server, keyed by a hash of the `state` parameter; the browser holds only a
    random binding value in a short-lived cookie (no identity, no patient data).
    """

    __tablename__ = "oidc_transaction"

    state_hash: str = Field(primary_key=True, max_length=64)
    binding_hash: str = Field(max_length=64)
    nonce: str = Field(max_length=200)
    code_verifier: str = Field(max_length=200)
    redirect_uri: str = Field(max_length=500)
    next_path: str = Field(default="/", max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
