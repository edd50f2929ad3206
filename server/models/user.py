"""People, their roles, their server-side sessions, service tokens and sign-in history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, utcnow


class Role(StrEnum):
    """What a person may do; a user may hold several."""

    coder = "coder"
    supervisor = "supervisor"
    biller = "biller"
    compliance = "compliance"
    admin = "admin"
    provider = "provider"  # a physician who answers queries (linked by NPI)


class Scope(StrEnum):
    """What a service token may do."""

    ingest = "ingest"
    billing = "billing"
    audit = "audit"


class User(SQLModel, table=True):
    """A member of the workforce (local password + TOTP, or SSO)."""

    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    display_name: str = Field(default="", max_length=200)
    password_hash: str | None = Field(default=None, max_length=255)
    totp_secret: str | None = Field(default=None, max_length=64)
    oidc_subject: str | None = Field(default=None, max_length=512, unique=True)
    is_active: bool = True
    in_training: bool = False
    totp_last_counter: int | None = None  # refuses a replayed code
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UserRole(SQLModel, table=True):
    """One role held by one user."""

    __tablename__ = "user_role"

    user_id: int = Field(foreign_key="app_user.id", primary_key=True, ondelete="CASCADE")
    role: str = Field(max_length=20, primary_key=True)


class UserSession(SQLModel, table=True):
    """A signed-in browser or API client. The cookie holds a random id; we store its hash."""

    __tablename__ = "user_session"

    id: str = Field(primary_key=True, max_length=64)  # sha256 hex of the cookie value
    user_id: int = Field(foreign_key="app_user.id", index=True, ondelete="CASCADE")
    csrf_token: str = Field(max_length=64)
    auth_method: str = Field(default="password", max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    source_ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)


class ServiceToken(SQLModel, table=True):
    """A credential for another system (interface engine, billing system, SIEM)."""

    __tablename__ = "service_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    token_hash: str = Field(max_length=64, unique=True)
    scopes: str = Field(max_length=200)  # space separated
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def scope_set(self) -> set[str]:
        """The token's scopes as a set."""
        return set(self.scopes.split())
