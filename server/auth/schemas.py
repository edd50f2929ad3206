"""Request and response shapes of the session API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SignInRequest(BaseModel):
    """Password + TOTP sign-in."""

    username: str = Field(max_length=64)
    password: str = Field(max_length=200)
    totp: str = Field(max_length=12)


class MeView(BaseModel):
    """Who the session belongs to, and the CSRF token its unsafe requests must carry."""

    username: str
    roles: list[str]
    csrf_token: str
