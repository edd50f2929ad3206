"""Hospital single sign-on: OpenID Connect authorization code flow with PKCE, state and nonce.

Authlib's Starlette client does discovery, builds the authorization URL (S256 code challenge,
random state and nonce), exchanges the code and checks the ID token (signature against the
provider's JWKS, issuer from discovery, audience = our client id, expiry, nonce).

The pending sign-in (state, nonce, PKCE verifier) stays on the server in `oidc_transaction`,
keyed by a hash of the state. The browser holds only a random binding value in a
short-lived cookie scoped to /auth/oidc, which proves the callback comes back to the browser
that started it. Nothing about the person or any patient is in a cookie or a URL we make.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from sqlmodel import Session, col, delete, select

from server.audit import service as audit_service
from server.auth import ratelimit
from server.auth import service as auth_service
from server.auth.principal import Principal, system_principal
from server.config import Settings, get_settings
from server.db import get_engine
from server.errors import AppError, ServiceUnavailable
from server.models import (
    OidcTransaction,
    Role,
    User,
    UserRole,
    UserSession,
    utcnow,
)

PROVIDER = "hospital"
TRANSACTION_MINUTES = 10
MFA_AMR = frozenset({"mfa", "otp", "hwk"})
# Asymmetric signatures only: never "none", never a shared-secret HMAC from metadata.
SAFE_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class OidcRefused(AppError):
    """A single sign-on attempt we refuse; `reason` goes to the audit log (no PHI)."""

    status_code = 401
    code = "sign_in_failed"

    def __init__(self, message: str, *, reason: str, status_code: int = 401) -> None:
        super().__init__(message, status_code=status_code)
        self.reason = reason


def enabled(settings: Settings | None = None) -> bool:
    """Whether single sign-on is configured."""
    settings = settings or get_settings()
    return bool(settings.oidc_discovery_url and settings.oidc_client_id)


def build_client(settings: Settings | None = None) -> StarletteOAuth2App:
    """An Authlib client for the configured provider (discovery is fetched on first use)."""
    settings = settings or get_settings()
    if not enabled(settings):
        raise ServiceUnavailable("Single sign-on is not configured.")
    oauth = OAuth()
    client: StarletteOAuth2App = oauth.register(
        PROVIDER,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret or None,
        server_metadata_url=settings.oidc_discovery_url,
        client_kwargs={
            "scope": settings.oidc_scopes,
            "code_challenge_method": "S256",
            "timeout": 10.0,
        },
    )
    return client


async def load_metadata(client: StarletteOAuth2App) -> dict[str, Any]:
    """The provider's discovery document, with signing algorithms narrowed to safe ones."""
    try:
        metadata: dict[str, Any] = await client.load_server_metadata()
    except Exception as exc:  # httpx errors, bad JSON: the provider is not usable now
        raise ServiceUnavailable(
            "The hospital sign-in service is not reachable. Try again shortly."
        ) from exc
    algs = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    metadata["id_token_signing_alg_values_supported"] = [a for a in algs if a in SAFE_ALGS]
    if not metadata["id_token_signing_alg_values_supported"]:
        raise ServiceUnavailable("The identity provider offers no acceptable signing algorithm.")
    return metadata


def _hash(value: str) -> str:
    return auth_service.sha256_hex(value)


def safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no //host)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target[:300]
    return "/"


# ---------------------------------------------------------------- starting


@dataclass
class Started:
    """Where to send the browser, and the binding value for its cookie."""

    url: str
    binding: str


async def start(
    client: StarletteOAuth2App, *, redirect_uri: str, next_path: str, ip: str | None
) -> Started:
    """Create the authorization URL and remember the transaction on the server."""
    ratelimit.signin_limiter.hit(
        f"oidc-start-ip:{ip or '?'}", limit=get_settings().signin_rate_per_minute
    )
    await load_metadata(client)
    rv = await client.create_authorization_url(redirect_uri)
    binding = secrets.token_urlsafe(32)
    with Session(get_engine()) as own:
        cutoff = utcnow() - timedelta(minutes=TRANSACTION_MINUTES)
        own.exec(delete(OidcTransaction).where(col(OidcTransaction.created_at) < cutoff))
        own.add(
            OidcTransaction(
                state_hash=_hash(rv["state"]),
                binding_hash=_hash(binding),
                nonce=rv["nonce"],
                code_verifier=rv["code_verifier"],
                redirect_uri=redirect_uri,
                next_path=safe_next(next_path),
            )
        )
        own.commit()
    return Started(url=rv["url"], binding=binding)


# ---------------------------------------------------------------- finishing


@dataclass
class Identity:
    """What the ID token told us about the person."""

    issuer: str
    subject: str
    preferred_username: str | None
    email: str | None
    name: str
    groups: list[str] = field(default_factory=list)
    amr: list[str] = field(default_factory=list)
    acr: str | None = None

    @property
    def link(self) -> str:
        """The value stored in `app_user.oidc_subject`: issuer|sub, unique across providers."""
        return f"{self.issuer}|{self.subject}"


def _take_transaction(state: str | None, binding: str | None) -> OidcTransaction:
    """Consume the pending transaction for `state` (single use), checking the browser binding."""
    if not state:
        raise OidcRefused("Sign-in could not be completed. Please start again.", reason="no-state")
    with Session(get_engine(), expire_on_commit=False) as own:
        tx = own.get(OidcTransaction, _hash(state))
        if tx is not None:
            own.delete(tx)
            own.commit()
    if tx is None:
        raise OidcRefused(
            "Sign-in could not be completed. Please start again.", reason="unknown-state"
        )
    if not binding or not hmac.compare_digest(_hash(binding), tx.binding_hash):
        raise OidcRefused(
            "Sign-in could not be completed in this browser. Please start again.",
            reason="browser-mismatch",
        )
    if tx.created_at < utcnow() - timedelta(minutes=TRANSACTION_MINUTES):
        raise OidcRefused("Sign-in took too long. Please start again.", reason="expired")
    return tx


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []


async def exchange(
    client: StarletteOAuth2App,
    *,
    state: str | None,
    code: str | None,
    error: str | None,
    binding: str | None,
) -> tuple[Identity, str]:
    """Check the callback and the ID token; returns who signed in and where to go next."""
    if error:
        # Some providers leave `state` off an error redirect; consume it when present.
        if state:
            with Session(get_engine()) as own:
                own.exec(
                    delete(OidcTransaction).where(col(OidcTransaction.state_hash) == _hash(state))
                )
                own.commit()
        raise OidcRefused(
            "The hospital sign-in was cancelled or refused.", reason=f"idp-{error[:40]}"
        )
    tx = _take_transaction(state, binding)
    if not code:
        raise OidcRefused("Sign-in could not be completed. Please start again.", reason="no-code")
    metadata = await load_metadata(client)
    try:
        token = await client.fetch_access_token(
            code=code, redirect_uri=tx.redirect_uri, code_verifier=tx.code_verifier
        )
    except Exception as exc:  # the provider refused the code (invalid_grant...) or is down
        raise OidcRefused(
            "The hospital sign-in could not be confirmed. Please start again.",
            reason=f"token-exchange:{type(exc).__name__}",
        ) from exc
    if "id_token" not in token:
        raise OidcRefused("The identity provider sent no ID token.", reason="no-id-token")
    try:
        claims = await client.parse_id_token(token, nonce=tx.nonce, leeway=60)
    except Exception as exc:  # bad signature, issuer, audience, expiry or nonce
        raise OidcRefused(
            "The hospital sign-in could not be verified.",
            reason=f"id-token:{type(exc).__name__}",
        ) from exc
    issuer = str(claims.get("iss") or "")
    if issuer != metadata.get("issuer"):  # Authlib checks this too; belt and braces
        raise OidcRefused("The hospital sign-in could not be verified.", reason="issuer")
    settings = get_settings()
    identity = Identity(
        issuer=issuer,
        subject=str(claims["sub"]),
        preferred_username=claims.get("preferred_username"),
        email=claims.get("email"),
        name=str(claims.get("name") or "")[:200],
        groups=_as_list(claims.get(settings.oidc_group_claim)),
        amr=_as_list(claims.get("amr")),
        acr=str(claims["acr"]) if claims.get("acr") is not None else None,
    )
    return identity, tx.next_path


def check_mfa(identity: Identity, settings: Settings | None = None) -> None:
    """When required, the provider must say the person used a second factor."""
    settings = settings or get_settings()
    if not settings.oidc_require_mfa:
        return
    if MFA_AMR.intersection(a.lower() for a in identity.amr):
        return
    if identity.acr is not None and identity.acr in settings.oidc_mfa_acr_values:
        return
    raise OidcRefused(
        "Your hospital sign-in did not use multi-factor authentication, which Chartdesk "
        "requires. Sign in again with your second factor.",
        reason="no-mfa",
        status_code=403,
    )


def mapped_roles(identity: Identity, settings: Settings | None = None) -> set[str] | None:
    """Roles from the group claim, or None when no role map is configured."""
    settings = settings or get_settings()
    if not settings.oidc_role_map:
        return None
    roles: set[str] = set()
    for group in identity.groups:
        for role in settings.oidc_role_map.get(group, []):
            if role in Role.__members__:
                roles.add(role)
    return roles


_USERNAME_OK = re.compile(r"[^a-z0-9._-]")


def _username_from(identity: Identity) -> str:
    base = identity.preferred_username or (identity.email or "").split("@")[0] or "sso-user"
    name = _USERNAME_OK.sub("-", base.strip().lower())[:56].strip("-.") or "sso-user"
    return name


def _find_or_link(session: Session, identity: Identity) -> User:
    """The linked user, else an unlinked one with that username or email, else a new one."""
    settings = get_settings()
    user = session.exec(select(User).where(User.oidc_subject == identity.link)).first()
    if user is not None:
        return user
    candidates = [c.strip().lower() for c in (identity.preferred_username, identity.email) if c]
    for candidate in candidates:
        found = session.exec(select(User).where(User.username == candidate)).first()
        if found is not None and found.oidc_subject is None:
            found.oidc_subject = identity.link
            session.add(found)
            session.flush()
            return found
    if not settings.oidc_auto_create:
        raise OidcRefused(
            "Your hospital account is not linked to a Chartdesk user. Ask an administrator "
            "to create your account.",
            reason="unknown-user",
            status_code=403,
        )
    roles = mapped_roles(identity) or set()
    if not roles:
        raise OidcRefused(
            "Your hospital account has no Chartdesk role. Ask an administrator.",
            reason="no-role",
            status_code=403,
        )
    username = _username_from(identity)
    if session.exec(select(User).where(User.username == username)).first() is not None:
        username = f"{username[:50]}-{secrets.token_hex(3)}"
    user = User(username=username, display_name=identity.name, oidc_subject=identity.link)
    session.add(user)
    session.flush()
    audit_service.record(
        session,
        actor=system_principal("sso"),
        action=audit_service.Action.user_admin,
        purpose="HOPERAT",
        detail=f"user={username} created by single sign-on",
    )
    return user


def _apply_roles(session: Session, user: User, identity: Identity) -> None:
    roles = mapped_roles(identity)
    if roles is None:
        return
    assert user.id is not None  # noqa: S101
    current = auth_service.roles_of(session, user.id)
    if not roles:
        raise OidcRefused(
            "Your hospital account has no Chartdesk role. Ask an administrator.",
            reason="no-role",
            status_code=403,
        )
    if current == roles:
        return
    session.exec(delete(UserRole).where(col(UserRole.user_id) == user.id))
    for role in sorted(roles):
        session.add(UserRole(user_id=user.id, role=role))
    session.flush()
    audit_service.record(
        session,
        actor=system_principal("sso"),
        action=audit_service.Action.user_admin,
        purpose="HOPERAT",
        detail=f"user={user.username} roles={','.join(sorted(roles))} from identity provider",
    )


def sign_in(
    session: Session,
    *,
    identity: Identity,
    ip: str | None,
    ua: str | None,
    old_cookie: str | None,
) -> auth_service.NewSession:
    """Create or link the user, map roles, and open a session (method "oidc")."""
    check_mfa(identity)
    user = _find_or_link(session, identity)
    if not user.is_active:
        raise OidcRefused("Your Chartdesk account is disabled.", reason="disabled", status_code=403)
    _apply_roles(session, user, identity)
    if old_cookie:
        session.exec(
            delete(UserSession).where(col(UserSession.id) == auth_service.sha256_hex(old_cookie))
        )
    return auth_service.open_session(session, user=user, method="oidc", ip=ip, ua=ua)


def record_refusal(
    session: Session, *, reason: str, ip: str | None, ua: str | None, who: str | None = None
) -> None:
    """Audit a refused single sign-on (own transaction: it survives the request's rollback)."""
    name = (who or "anonymous")[:64]

    audit_service.record_denied(
        session,
        actor=Principal(name=name, kind="anonymous", source_ip=ip, user_agent=ua),
        action=audit_service.Action.sign_in_failed,
        detail=f"oidc:{reason}"[:200],
    )


async def logout_url(client: StarletteOAuth2App, *, post_logout_redirect_uri: str) -> str | None:
    """The provider's end-session URL (RP-initiated logout), when it has one."""
    try:
        metadata = await load_metadata(client)
    except ServiceUnavailable:
        return None
    if not metadata.get("end_session_endpoint"):
        return None
    rv = await client.create_logout_url(
        post_logout_redirect_uri=post_logout_redirect_uri, client_id=client.client_id
    )
    url: str = rv["url"]
    return url
