"""One Settings object, read from CHARTDESK_* environment variables (and `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every setting Chartdesk reads; README documents each one."""

    model_config = SettingsConfigDict(env_prefix="CHARTDESK_", env_file=".env", extra="ignore")

    env: Literal["production", "development"] = "production"
    database_url: str = "sqlite:///./var/chartdesk.db"
    keyring_file: Path | None = None
    # Optional AWS KMS key wrapping data keys instead of the keyring's local KEKs.
    kms_key_id: str | None = None
    kms_endpoint_url: str | None = None
    kms_region: str = "us-east-1"
    session_idle_minutes: int = Field(default=15, ge=1)
    session_max_hours: int = Field(default=12, ge=1)
    session_warning_seconds: int = Field(default=120, ge=10)
    lease_minutes: int = Field(default=20, ge=1)
    max_leased_items: int = Field(default=1, ge=1)
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    due_days_after_discharge: int = Field(default=3, ge=0)
    hold_reasons: list[str] = ["physician query", "missing documentation", "other"]
    trusted_origins: list[str] = []
    log_level: str = "INFO"
    demo_file: Path | None = None  # set by `chartdesk demo`: shows demo codes on sign-in
    # Rate limits (issue 7 fills them in).
    signin_rate_per_minute: int = Field(default=20, ge=1)

    @property
    def production(self) -> bool:
        """True when cookies must be Secure and demo keys are refused."""
        return self.env == "production"

    @property
    def session_cookie_name(self) -> str:
        """`__Host-` prefixed in production so the cookie is bound to our origin."""
        return "__Host-chartdesk_session" if self.production else "chartdesk_session"

    @property
    def is_sqlite(self) -> bool:
        """Whether the configured database is the embedded SQLite default."""
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests clear the cache to change them)."""
    return Settings()
