"""Access control as FastAPI dependencies: every route declares one of these.

`Public`, `RequireRole(...)`, `RequireScope(...)` and `RequireRoleOrScope(...)` all derive
from `AccessRule`; a test walks `app.routes` and fails on any route without one.
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Path, Request
from sqlmodel import Session

from server.audit import service as audit_service
from server.auth import ratelimit
from server.auth import service as auth_service
from server.auth.principal import Principal
from server.config import get_settings
from server.db import SESSION, end_session, get_engine
from server.errors import Forbidden, NotAuthenticated
from server.models import Role, Scope
from server.models.base import utcnow

SessionDep = Annotated[Session, SESSION]

# A row id in a path: bounded to what a database integer key can hold, so that an absurd id
# answers 422 instead of overflowing the driver. Our keys are `Integer`: 64-bit on SQLite but
# int4 on PostgreSQL, where anything above 2**31 - 1 raised DataError (a 500).
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Sent by a page's own background requests (app.js adds it for elements marked
# data-background): they do not count as the person's activity for the idle sign-out.
BACKGROUND_HEADER = "x-chartdesk-background"


def client_ip(request: Request) -> str | None:
    """The caller's address as the server saw it."""
    return request.client.host if request.client else None


def request_id(request: Request) -> str | None:
    """The id the request-id middleware gave this request."""
    return getattr(request.state, "request_id", None)


def anonymous(request: Request) -> Principal:
    """The caller before we know who it is."""
    return Principal(
        name="anonymous",
        kind="anonymous",
        source_ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        request_id=request_id(request),
    )


def check_origin(request: Request) -> None:
    """Refuse an unsafe request that a browser says comes from another site.

    Browsers send `Sec-Fetch-Site`; it is the reliable signal, because with our
    `Referrer-Policy: no-referrer` a same-origin form POST carries `Origin: null`.
    Without it we compare `Origin` with our own host. Non-browser clients send neither;
    the CSRF token (or bearer token) still applies to them.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site not in ("same-origin", "none"):
            raise Forbidden("Cross-site request refused.", code="bad_origin")
        return
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return
    parts = urlsplit(origin)
    presented = f"{parts.scheme}://{parts.netloc}"
    ours = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    if presented != ours and presented not in get_settings().trusted_origins:
        raise Forbidden("Cross-site request refused.", code="bad_origin")


async def presented_csrf(request: Request) -> str | None:
    """The CSRF token the request carries: header first, then a plain form's hidden field."""
    header = request.headers.get("x-csrf-token")
    if header:
        return header
    if request.method in UNSAFE_METHODS:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf_token")
            return value if isinstance(value, str) else None
    return None


_LIMITER_LOCK = threading.Lock()


def token_limiter(request: Request) -> ratelimit.LocalLimiter:
    """This app's in-process counter of token requests (one per app, so per process)."""
    limiter = getattr(request.app.state, "token_limiter", None)
    if limiter is None:
        with _LIMITER_LOCK:
            limiter = getattr(request.app.state, "token_limiter", None)
            if limiter is None:
                limiter = ratelimit.LocalLimiter()
                request.app.state.token_limiter = limiter
    assert isinstance(limiter, ratelimit.LocalLimiter)  # noqa: S101
    return limiter


def _resolve(request: Request, session: Session, csrf: str | None) -> Principal:
    """Find the caller from a bearer token or a session cookie, checking CSRF for sessions."""
    ip, ua, rid = client_ip(request), request.headers.get("user-agent"), request_id(request)
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        bearer = auth[7:].strip()
        ratelimit.check_token_use(
            token_limiter(request), token_key=auth_service.sha256_hex(bearer)[:16], ip=ip
        )
        return auth_service.token_principal(session, bearer=bearer, ip=ip, ua=ua, request_id=rid)
    cookie = request.cookies.get(get_settings().session_cookie_name)
    if not cookie:
        raise NotAuthenticated("Please sign in.")
    principal = auth_service.session_principal(
        session,
        cookie_value=cookie,
        ip=ip,
        ua=ua,
        request_id=rid,
        activity=request.headers.get(BACKGROUND_HEADER) is None,
    )
    if request.method in UNSAFE_METHODS:
        check_origin(request)
        expected = principal.csrf_token or ""
        if not csrf or not hmac.compare_digest(csrf, expected):
            audit_service.record_denied(
                session, actor=principal, action=audit_service.Action.access, detail="csrf"
            )
            raise Forbidden(
                "Missing or invalid CSRF token. Reload the page and try again.", code="csrf_failed"
            )
    request.state.principal = principal
    return principal


class AccessRule:
    """Base of every access declaration; `describe` is what the route table test prints."""

    def describe(self) -> str:  # pragma: no cover - overridden
        """A short human description of who may call."""
        raise NotImplementedError


class Public(AccessRule):
    """Anyone, signed in or not (sign-in page, health checks, static files)."""

    def __call__(self, request: Request) -> Principal:
        request.state.access_granted = True
        return anonymous(request)

    def describe(self) -> str:
        """Anyone."""
        return "public"


class _Guarded(AccessRule):
    def __init__(self, roles: tuple[str, ...] = (), scopes: tuple[str, ...] = ()) -> None:
        self.roles = roles
        self.scopes = scopes

    def describe(self) -> str:
        """Roles and scopes allowed."""
        parts = [f"role:{r}" for r in self.roles] + [f"scope:{s}" for s in self.scopes]
        return " | ".join(parts) or "any signed-in person"

    def __call__(
        self,
        request: Request,
        session: SessionDep,
        csrf: Annotated[str | None, Depends(presented_csrf)],
    ) -> Principal:
        principal = _resolve(request, session, csrf)
        allowed = (
            (
                principal.kind == "user"
                and (not self.roles or principal.roles.intersection(self.roles))
            )
            if principal.kind == "user"
            else bool(self.scopes and principal.scopes.intersection(self.scopes))
        )
        if principal.kind == "user" and not self.roles and self.scopes:
            allowed = False
        if not allowed:
            audit_service.record_denied(
                session,
                actor=principal,
                action=audit_service.Action.access,
                detail=f"{request.method} {_route_path(request)}",
            )
            raise Forbidden("You do not have access to this.")
        request.state.access_granted = True  # a form that fails may now show its page again
        return principal


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "?")


class RequireRole(_Guarded):
    """A signed-in person holding one of `roles` (no role: any signed-in person)."""

    def __init__(self, *roles: str) -> None:
        super().__init__(roles=roles)


class RequireScope(_Guarded):
    """A service token holding one of `scopes`."""

    def __init__(self, *scopes: str) -> None:
        super().__init__(scopes=scopes)


class RequireRoleOrScope(_Guarded):
    """A person with one of `roles`, or a token with one of `scopes` (billing, audit)."""

    def __init__(self, *, roles: tuple[str, ...], scopes: tuple[str, ...]) -> None:
        super().__init__(roles=roles, scopes=scopes)


@dataclass
class PendingCheck:
    """A request whose access rule is checked later, by the route's own statement.

    `check(session)` runs the ordinary rule (the same 401/403 and audited refusals as every
    other route); the fast path checks the same in SQL (`chartdesk_claim_session`) and falls
    back to `check` whenever that says no, so a refusal is always the ordinary one.
    """

    rule: _Guarded
    request: Request
    csrf: str | None

    def check(self, session: Session) -> Principal:
        """The ordinary access rule (sync: call it in a worker thread)."""
        return _Guarded.__call__(self.rule, self.request, session, self.csrf)

    def check_alone(self) -> None:
        """The ordinary rule for a request its own parameters refuse (sync: a worker thread).

        FastAPI runs the dependencies before it validates the parameters, so an ordinary
        route answers a refused caller 401/403 (audited) before a bad parameter's 422; this
        rule's dependency checks nothing, so the 422 handler calls this first. The rule's
        work is rolled back (the 422 rolled the ordinary request back: no idle-clock touch);
        its refusals are written after, as always.
        """
        session = Session(get_engine(), expire_on_commit=False)
        try:
            self.check(session)
        finally:
            end_session(session, ok=False)

    def session_hash(self) -> str | None:
        """The session id (hash of the cookie) when a fast check may be tried, else None.

        Only a cookie session qualifies, and on an unsafe method only with a CSRF token and an
        acceptable origin; bearer tokens, and everything that would be refused before the
        session's row is read, go the ordinary way.
        """
        request = self.request
        if request.headers.get("authorization", "").lower().startswith("bearer "):
            return None
        cookie = request.cookies.get(get_settings().session_cookie_name)
        if not cookie:
            return None
        if request.method in UNSAFE_METHODS:
            if not self.csrf:
                return None
            try:
                check_origin(request)
            except Forbidden:
                return None
        return auth_service.sha256_hex(cookie)

    @property
    def activity(self) -> bool:
        """The person's own request (restarts the idle clock), not a page's background one."""
        return self.request.headers.get(BACKGROUND_HEADER) is None

    def in_statement(self) -> InStatementCaller | None:
        """Who calls, as a route's one statement checks and audits them; None when the
        ordinary rule must answer (see `session_hash`)."""
        session_hash = self.session_hash()
        if session_hash is None:
            return None
        request = self.request
        return InStatementCaller(
            session_hash=session_hash,
            activity=self.activity,
            roles=tuple(self.rule.roles),
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            request_id=request_id(request),
        )


@dataclass(frozen=True)
class InStatementCaller:
    """A cookie session's request, for a SQL function that checks the session
    (`chartdesk_session_check`) and writes the audit row itself (the record view, the audit
    search): the values every such function takes."""

    session_hash: str
    activity: bool
    roles: tuple[str, ...]
    ip: str | None
    user_agent: str | None
    request_id: str | None

    def params(self) -> dict[str, Any]:
        """The session check's and the audit row's parameters, as the functions name them
        (`now` is the check's time and the row's)."""
        settings = get_settings()
        return {
            "sid": self.session_hash,
            "activity": self.activity,
            "idle": settings.session_idle_minutes,
            "max_hours": settings.session_max_hours,
            "roles": list(self.roles),
            "now": utcnow(),
            "ip": self.ip,
            "ua": (self.user_agent or "")[:300] or None,
            "rid": self.request_id,
        }


class _InStatement(_Guarded):
    """An access rule checked inside the route's own SQL statement.

    The dependency does no I/O: it hands the route a `PendingCheck`, and the route either
    runs its statement with the check folded in (PostgreSQL, cookie session) or calls
    `PendingCheck.check` first (the ordinary rule). Declared like any rule: the route table
    test sees it.
    """

    async def __call__(self, request: Request) -> PendingCheck:  # type: ignore[override]
        pending = PendingCheck(rule=self, request=request, csrf=await presented_csrf(request))
        request.state.pending_check = pending  # for the 422 handler (`check_alone`)
        return pending


class RequireRoleInStatement(_InStatement, RequireRole):
    """`RequireRole` for a route that checks the session inside its one SQL statement."""


class RequireRoleOrScopeInStatement(_InStatement, RequireRoleOrScope):
    """`RequireRoleOrScope` for such a route: a token (a scope) always takes the ordinary way."""


SignedIn = Annotated[Principal, Depends(RequireRole())]
Anyone = Annotated[Principal, Depends(Public())]

# Who may call, by role or scope: every router takes its aliases from here.
CoderDep = Annotated[Principal, Depends(RequireRole(Role.coder))]
# A coder, checked by the route's own statement (Next: the claim checks the session).
CoderInStatementDep = Annotated[PendingCheck, Depends(RequireRoleInStatement(Role.coder))]
SupervisorDep = Annotated[Principal, Depends(RequireRole(Role.supervisor))]
CoderOrSupervisorDep = Annotated[Principal, Depends(RequireRole(Role.coder, Role.supervisor))]
BillerDep = Annotated[Principal, Depends(RequireRole(Role.biller))]
SupervisorOrBillerDep = Annotated[
    Principal, Depends(RequireRole(Role.supervisor, Role.biller))
]  # denial reports
ComplianceDep = Annotated[Principal, Depends(RequireRole(Role.compliance))]
AdminDep = Annotated[Principal, Depends(RequireRole(Role.admin))]
ProviderDep = Annotated[Principal, Depends(RequireRole(Role.provider))]
# Physician queries: providers read and answer their own; coders their own; supervisors all.
QueryReaderDep = Annotated[
    Principal, Depends(RequireRole(Role.provider, Role.coder, Role.supervisor))
]
RulesDep = Annotated[Principal, Depends(RequireRole(Role.supervisor, Role.admin))]
IngestDep = Annotated[Principal, Depends(RequireScope(Scope.ingest))]
BillingDep = Annotated[
    Principal, Depends(RequireRoleOrScope(roles=(Role.biller,), scopes=(Scope.billing,)))
]
AuditorDep = Annotated[
    Principal, Depends(RequireRoleOrScope(roles=(Role.compliance,), scopes=(Scope.audit,)))
]
# The same, checked by the route's own statement (the audit search API).
AuditorInStatementDep = Annotated[
    PendingCheck,
    Depends(RequireRoleOrScopeInStatement(roles=(Role.compliance,), scopes=(Scope.audit,))),
]
