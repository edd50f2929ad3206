"""Sign-in, server-side sessions, lockout, users and service tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam
from sqlmodel import Session, col, delete, select

from server.audit import service as audit_service
from server.auth import passwords, ratelimit
from server.auth.principal import Principal
from server.config import get_settings
from server.db import after_end
from server.errors import (
    AppError,
    Conflict,
    NotAuthenticated,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from server.models import (
    ProviderAccount,
    Queue,
    QueueMember,
    Role,
    Scope,
    ServiceToken,
    User,
    UserRole,
    UserSession,
    utcnow,
)

SIGN_IN_REFUSED = "Invalid username, password or code."
TOKEN_PREFIX = "cdt_"  # noqa: S105 - a prefix, not a secret


def sha256_hex(value: str) -> str:
    """Hex SHA-256, how session ids and tokens are stored."""
    return hashlib.sha256(value.encode()).hexdigest()


# ---------------------------------------------------------------- users


def roles_of(session: Session, user_id: int) -> frozenset[str]:
    """The roles a user holds."""
    rows = session.exec(select(UserRole.role).where(UserRole.user_id == user_id)).all()
    return frozenset(rows)


@dataclass
class NewUser:
    """A created account with the secrets shown once."""

    user: User
    password: str
    totp_uri: str


def create_user(
    session: Session,
    *,
    username: str,
    roles: list[str],
    password: str | None = None,
    queues: list[str] | None = None,
    display_name: str = "",
    actor: Principal | None = None,
    npi: str | None = None,
    email: str | None = None,
) -> NewUser:
    """Create a local account with argon2id password and a fresh TOTP secret.

    A `provider` needs `npi` (10 digits): it links the account to the encounter
    practitioners with that NPI, whose queries it then answers; `email` (optional) is where
    their query reminders go.
    """
    username = username.strip().lower()
    if (
        not username
        or len(username) > 64
        or not username.replace("-", "").replace("_", "").replace(".", "").isalnum()
    ):
        raise AppError("Usernames are 1-64 letters, digits, '.', '-' or '_'.", status_code=422)
    bad = [r for r in roles if r not in Role.__members__]
    if bad or not roles:
        raise AppError(f"Unknown role: {', '.join(bad) or '(none)'}.", status_code=422)
    if session.exec(select(User).where(User.username == username)).first():
        raise Conflict(f"User {username} already exists.")
    npi = npi.strip() if npi else None
    if (Role.provider in roles) != (npi is not None):
        raise AppError(
            "A provider account needs --npi, and only a provider has one.", status_code=422
        )
    if npi is not None:
        if len(npi) != 10 or not npi.isdigit():
            raise AppError("An NPI is 10 digits.", status_code=422)
        if session.exec(select(ProviderAccount).where(ProviderAccount.npi == npi)).first():
            raise Conflict("Another account already has this NPI.")
    if email is not None and (npi is None or "@" not in email or len(email) > 254):
        raise AppError("An email address is for a provider's query reminders.", status_code=422)
    password = password or passwords.generate_password()
    if len(password) < 12:
        raise AppError("Passwords are at least 12 characters.", status_code=422)
    secret = passwords.new_totp_secret()
    user = User(
        username=username,
        display_name=display_name,
        password_hash=passwords.hash_password(password),
        totp_secret=secret,
    )
    session.add(user)
    session.flush()
    assert user.id is not None  # noqa: S101 - set by flush
    for role in sorted(set(roles)):
        session.add(UserRole(user_id=user.id, role=role))
    if npi is not None:
        session.add(ProviderAccount(user_id=user.id, npi=npi, email=email))
    for name in queues or []:
        queue = session.exec(select(Queue).where(Queue.name == name)).first()
        if queue is None:
            raise NotFound(f"No queue named {name}.")
        assert queue.id is not None  # noqa: S101
        session.add(QueueMember(queue_id=queue.id, user_id=user.id))
    if actor is not None:
        audit_service.record(
            session,
            actor=actor,
            action=audit_service.Action.user_admin,
            purpose="HOPERAT",
            detail=f"user={username} created",
        )
    session.flush()
    return NewUser(user=user, password=password, totp_uri=passwords.totp_uri(secret, username))


def get_user(session: Session, *, user_id: int) -> User:
    """A user by id, or NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def find_user(session: Session, *, username: str) -> User | None:
    """A user by username (trimmed, any case), or None."""
    return session.exec(select(User).where(User.username == username.strip().lower())).first()


def get_user_by_name(session: Session, *, username: str) -> User:
    """A user by username, or NotFound."""
    user = find_user(session, username=username)
    if user is None:
        raise NotFound(f"No user named {username}.")
    return user


def list_users(session: Session) -> list[tuple[User, frozenset[str]]]:
    """Every user with their roles, by username."""
    users = session.exec(select(User).order_by(col(User.username))).all()
    roles: dict[int, set[str]] = {}
    for user_id, role in session.exec(select(UserRole.user_id, UserRole.role)).all():
        roles.setdefault(user_id, set()).add(role)
    return [(u, frozenset(roles.get(u.id or 0, set()))) for u in users]


def set_roles(session: Session, *, actor: Principal, user_id: int, roles: list[str]) -> None:
    """Replace a user's roles (admin)."""
    user = get_user(session, user_id=user_id)
    bad = [r for r in roles if r not in Role.__members__]
    if bad:
        raise AppError(f"Unknown role: {', '.join(bad)}.", status_code=422)
    if (
        user.id == actor.user_id
        and Role.admin in roles_of(session, user_id)
        and Role.admin not in roles
    ):
        raise Conflict("You cannot remove your own admin role.")
    if Role.provider in roles and session.get(ProviderAccount, user_id) is None:
        raise AppError(
            "A provider needs an NPI: create the account as a provider with its NPI.",
            status_code=422,
        )
    session.exec(delete(UserRole).where(col(UserRole.user_id) == user_id))
    for role in sorted(set(roles)):
        session.add(UserRole(user_id=user_id, role=role))
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.user_admin,
        purpose="HOPERAT",
        detail=f"user={user.username} roles={','.join(sorted(set(roles)))}",
    )
    session.flush()


def set_active(session: Session, *, actor: Principal, user_id: int, active: bool) -> None:
    """Enable or disable an account; disabling ends its sessions at once."""
    user = get_user(session, user_id=user_id)
    if user.id == actor.user_id and not active:
        raise Conflict("You cannot disable your own account.")
    user.is_active = active
    if active:
        user.failed_logins = 0
        user.locked_until = None
    else:
        session.exec(delete(UserSession).where(col(UserSession.user_id) == user_id))
    session.add(user)
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.user_admin,
        purpose="HOPERAT",
        detail=f"user={user.username} {'enabled' if active else 'disabled'}",
    )
    session.flush()


def reset_totp(session: Session, *, actor: Principal | None, user_id: int) -> str:
    """Give a user a new TOTP secret (ending their sessions); returns the otpauth URI."""
    user = get_user(session, user_id=user_id)
    secret = passwords.new_totp_secret()
    user.totp_secret = secret
    user.totp_last_counter = None
    session.add(user)
    session.exec(delete(UserSession).where(col(UserSession.user_id) == user_id))
    if actor is not None:
        audit_service.record(
            session,
            actor=actor,
            action=audit_service.Action.user_admin,
            purpose="HOPERAT",
            detail=f"user={user.username} totp-reset",
        )
    session.flush()
    return passwords.totp_uri(secret, user.username)


# ---------------------------------------------------------------- sign-in


def _record_signin(
    session: Session,
    *,
    username: str,
    user_id: int | None,
    event: str,
    ip: str | None,
    ua: str | None,
) -> None:
    """Failed sign-in bookkeeping, kept even though the request is refused."""
    threshold, minutes = get_settings().lockout_threshold, get_settings().lockout_minutes

    def write(own: Session) -> None:
        user = own.get(User, user_id) if user_id is not None and event == "failure" else None
        if user is not None:
            user.failed_logins += 1
            if user.failed_logins >= threshold:
                user.locked_until = utcnow() + timedelta(minutes=minutes)
                user.failed_logins = 0
                audit_service.record(
                    own,
                    actor=Principal(name=username[:64], kind="user", source_ip=ip, user_agent=ua),
                    action=audit_service.Action.lockout,
                    purpose=None,
                    detail=f"locked for {minutes} minutes after {threshold} failed sign-ins",
                )
            own.add(user)

    after_end(session, write)
    actor = Principal(
        name=username[:64], kind="user" if user_id else "anonymous", source_ip=ip, user_agent=ua
    )
    audit_service.record_denied(
        session, actor=actor, action=audit_service.Action.sign_in_failed, detail=event
    )


@dataclass
class NewSession:
    """A session just opened: the cookie value is only ever known here."""

    cookie_value: str
    record: UserSession
    user: User
    roles: frozenset[str]


def open_session(
    session: Session, *, user: User, method: str, ip: str | None, ua: str | None
) -> NewSession:
    """Start a new server-side session (always a new random id: no fixation)."""
    assert user.id is not None  # noqa: S101
    cookie_value = secrets.token_urlsafe(32)
    record = UserSession(
        id=sha256_hex(cookie_value),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        auth_method=method,
        source_ip=ip,
        user_agent=(ua or "")[:300] or None,
    )
    session.add(record)
    roles = roles_of(session, user.id)
    audit_service.record(
        session,
        actor=Principal(
            name=user.username, kind="user", roles=roles, user=user, source_ip=ip, user_agent=ua
        ),
        action=audit_service.Action.sign_in,
        purpose=None,
        detail=f"method={method}",
    )
    session.flush()
    return NewSession(cookie_value=cookie_value, record=record, user=user, roles=roles)


def check_signin_rate(
    session: Session, *, username: str | None, ip: str | None, ua: str | None
) -> None:
    """Count a sign-in attempt per IP and per account; refuse (429, audited) when over."""
    try:
        ratelimit.check_signin(ip=ip, username=username, session=session)
    except RateLimited:
        audit_service.record_denied(
            session,
            actor=Principal(
                name=(username or "anonymous")[:64], kind="anonymous", source_ip=ip, user_agent=ua
            ),
            action=audit_service.Action.sign_in_failed,
            detail="rate-limited",
        )
        raise


def sign_in(
    session: Session,
    *,
    username: str,
    password: str,
    totp: str,
    ip: str | None,
    ua: str | None,
    old_cookie: str | None = None,
) -> NewSession:
    """Check password and TOTP, enforce lockout, and open a new session.

    Every refusal gives the same answer, whether the user is unknown, locked, or gave a
    wrong password or code.
    """
    username = (username or "").strip().lower()
    check_signin_rate(session, username=username, ip=ip, ua=ua)
    user = session.exec(select(User).where(User.username == username)).first()
    password_ok = passwords.verify_password(user.password_hash if user else None, password or "")
    now = utcnow()
    if user is None or not user.is_active:
        _record_signin(session, username=username, user_id=None, event="failure", ip=ip, ua=ua)
        raise NotAuthenticated(SIGN_IN_REFUSED, code="sign_in_failed")
    if user.locked_until is not None and user.locked_until > now:
        _record_signin(session, username=username, user_id=None, event="locked", ip=ip, ua=ua)
        raise NotAuthenticated(SIGN_IN_REFUSED, code="sign_in_failed")
    counter = passwords.match_totp(user.totp_secret, (totp or "").strip(), user.totp_last_counter)
    if not password_ok or counter is None:
        _record_signin(session, username=username, user_id=user.id, event="failure", ip=ip, ua=ua)
        raise NotAuthenticated(SIGN_IN_REFUSED, code="sign_in_failed")
    user.failed_logins = 0
    user.locked_until = None
    user.totp_last_counter = counter
    session.add(user)
    if old_cookie:
        session.exec(delete(UserSession).where(col(UserSession.id) == sha256_hex(old_cookie)))
    return open_session(session, user=user, method="password", ip=ip, ua=ua)


def confirm_totp(session: Session, *, principal: Principal, code: str | None) -> None:
    """A signature: the caller re-enters a current authenticator code (password users).

    Accounts that sign in through SSO have no code here and pass. A wrong or replayed code
    is refused (422 at the field `totp`) and counts as a failed sign-in toward the lockout;
    a locked account's codes are not even checked (429), so the code cannot be guessed
    through this door either.
    """
    user = session.get(User, principal.user_id) if principal.user_id is not None else None
    if user is None:
        raise NotAuthenticated("Please sign in.")
    if principal.extra.get("auth_method") == "oidc" or user.totp_secret is None:
        return
    if user.locked_until is not None and user.locked_until > utcnow():
        raise RateLimited("Too many wrong codes; try again later.")
    counter = passwords.match_totp(user.totp_secret, (code or "").strip(), user.totp_last_counter)
    if counter is None:
        _record_signin(
            session,
            username=user.username,
            user_id=user.id,
            event="failure",
            ip=principal.source_ip,
            ua=principal.user_agent,
        )
        raise ValidationFailed(
            "Sign with a current code from your authenticator app.",
            details=[{"loc": ["totp"], "msg": "not a current authenticator code"}],
        )
    user.totp_last_counter = counter
    session.add(user)
    session.flush()


def provider_npi(session: Session, *, user_id: int | None) -> str | None:
    """The NPI linked to a provider account (None for anyone else)."""
    if user_id is None:
        return None
    link = session.get(ProviderAccount, user_id)
    return link.npi if link is not None else None


def sign_out(session: Session, *, principal: Principal) -> None:
    """End the caller's session (the cookie stops working at once)."""
    if principal.session is None:
        return
    session.exec(delete(UserSession).where(col(UserSession.id) == principal.session.id))
    audit_service.record(
        session, actor=principal, action=audit_service.Action.sign_out, purpose=None
    )
    session.flush()


# Built once (SQLAlchemy reuses its cache key): it runs on every request.
_SESSION_USER_ROLES = (
    select(UserSession, User, UserRole.role)
    .join(User, col(User.id) == col(UserSession.user_id), isouter=True)
    .join(UserRole, col(UserRole.user_id) == col(User.id), isouter=True)
    .where(col(UserSession.id) == bindparam("session_id"))
)


def session_principal(
    session: Session,
    *,
    cookie_value: str,
    ip: str | None,
    ua: str | None,
    request_id: str | None,
    activity: bool = True,
) -> Principal:
    """Resolve a session cookie, enforcing idle and absolute timeouts on the server.

    `activity`: the request comes from the person (a page, a form, a key in the code panel),
    so it restarts the idle clock. A page's own background requests (the chart's lease
    heartbeat, the dashboard's refresh) pass False: they must not keep an unattended screen
    signed in (HIPAA 164.312(a)(2)(iii), automatic logoff).
    """
    settings = get_settings()
    # One round trip for the session, its user and the user's roles (a row per role).
    rows = session.execute(_SESSION_USER_ROLES, {"session_id": sha256_hex(cookie_value)}).all()
    if not rows:
        raise NotAuthenticated("Your session has ended. Please sign in again.")
    record, user = rows[0][0], rows[0][1]
    now = utcnow()
    idle_limit = record.last_seen_at + timedelta(minutes=settings.session_idle_minutes)
    absolute_limit = record.created_at + timedelta(hours=settings.session_max_hours)
    if now > idle_limit or now > absolute_limit or user is None or not user.is_active:
        _end_expired(
            session,
            record_id=record.id,
            user_id=record.user_id,
            username=user.username if user else "?",
            ip=ip,
            ua=ua,
        )
        raise NotAuthenticated(
            "Your session timed out. Please sign in again.", code="session_expired"
        )
    if activity and (now - record.last_seen_at).total_seconds() > 10:
        record.last_seen_at = now
        session.add(record)
    assert user.id is not None  # noqa: S101
    return Principal(
        name=user.username,
        kind="user",
        roles=frozenset(role for _, _, role in rows if role is not None),
        user=user,
        session=record,
        source_ip=ip,
        user_agent=ua,
        request_id=request_id,
        extra={"auth_method": record.auth_method},
    )


def _end_expired(
    session: Session, *, record_id: str, user_id: int, username: str, ip: str | None, ua: str | None
) -> None:
    def write(own: Session) -> None:
        own.exec(delete(UserSession).where(col(UserSession.id) == record_id))

    after_end(session, write)
    audit_service.record_denied(
        session,
        actor=Principal(name=username, kind="user", source_ip=ip, user_agent=ua),
        action=audit_service.Action.session_timeout,
        outcome=audit_service.Outcome.success,
    )


def session_deadlines(record: UserSession) -> tuple[datetime, datetime]:
    """When the session will end by idleness and at the latest."""
    settings = get_settings()
    return (
        record.last_seen_at + timedelta(minutes=settings.session_idle_minutes),
        record.created_at + timedelta(hours=settings.session_max_hours),
    )


# ---------------------------------------------------------------- tokens


def list_tokens(session: Session) -> list[ServiceToken]:
    """Every service token (hashes only are stored), by name."""
    return list(session.exec(select(ServiceToken).order_by(col(ServiceToken.name))).all())


def _token_event(session: Session, *, actor: Principal | None, detail: str) -> None:
    if actor is not None:
        audit_service.record(
            session,
            actor=actor,
            action=audit_service.Action.token_admin,
            purpose="HOPERAT",
            detail=detail,
        )


def create_token(
    session: Session, *, name: str, scopes: list[str], actor: Principal | None = None
) -> tuple[ServiceToken, str]:
    """Create a scoped service token; the plaintext is returned once and never stored."""
    bad = [s for s in scopes if s not in Scope.__members__]
    if bad or not scopes:
        raise AppError(
            f"Unknown scope: {', '.join(bad) or '(none)'}. Scopes: {', '.join(Scope.__members__)}.",
            status_code=422,
        )
    if session.exec(select(ServiceToken).where(ServiceToken.name == name)).first():
        raise Conflict(f"A token named {name} already exists.")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ServiceToken(
        name=name, token_hash=sha256_hex(plaintext), scopes=" ".join(sorted(set(scopes)))
    )
    session.add(token)
    session.flush()
    _token_event(session, actor=actor, detail=f"token={name} created scopes={token.scopes}")
    return token, plaintext


def revoke_token(session: Session, *, name: str, actor: Principal | None = None) -> None:
    """Stop a token from working."""
    token = session.exec(select(ServiceToken).where(ServiceToken.name == name)).first()
    if token is None:
        raise NotFound(f"No token named {name}.")
    token.revoked_at = utcnow()
    session.add(token)
    session.flush()
    _token_event(session, actor=actor, detail=f"token={name} revoked")


def token_principal(
    session: Session, *, bearer: str, ip: str | None, ua: str | None, request_id: str | None
) -> Principal:
    """Resolve a bearer token."""
    token = session.exec(
        select(ServiceToken).where(ServiceToken.token_hash == sha256_hex(bearer))
    ).first()
    if token is None or token.revoked_at is not None:
        raise NotAuthenticated("Invalid or revoked token.", headers={"WWW-Authenticate": "Bearer"})
    now = utcnow()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        token.last_used_at = now
        session.add(token)
    return Principal(
        name=token.name,
        kind="token",
        scopes=frozenset(token.scope_set),
        token=token,
        source_ip=ip,
        user_agent=ua,
        request_id=request_id,
    )
