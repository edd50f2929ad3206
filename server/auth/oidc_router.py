"""Routes of hospital single sign-on: start, callback, sign-out (pages only, under /auth/oidc)."""

from __future__ import annotations

from authlib.integrations.starlette_client import StarletteOAuth2App
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from server.auth import oidc, ratelimit
from server.auth import service as auth_service
from server.auth.deps import Anyone, SessionDep, SignedIn, client_ip
from server.auth.router import _clear_cookie, _set_cookie
from server.config import get_settings
from server.errors import AppError, RateLimited
from server.web.templates import render

router = APIRouter(prefix="/auth/oidc", include_in_schema=False)


def _binding_cookie() -> tuple[str, bool]:
    """Name of the short-lived browser-binding cookie, and whether it must be Secure."""
    production = get_settings().production
    return ("__Secure-chartdesk_oidc" if production else "chartdesk_oidc"), production


def _client(request: Request) -> StarletteOAuth2App:
    """One Authlib client per app (discovery and JWKS are cached on it)."""
    client = getattr(request.app.state, "oidc_client", None)
    if client is None:
        client = oidc.build_client()
        request.app.state.oidc_client = client
    assert isinstance(client, StarletteOAuth2App)  # noqa: S101
    return client


def _redirect_uri(request: Request) -> str:
    configured = get_settings().oidc_redirect_uri
    return configured or str(request.url_for("oidc_callback"))


def _refused(request: Request, message: str, status_code: int) -> Response:
    return render(
        request,
        "auth/login.html",
        {"next": "/", "sso_error": message, "oidc_enabled": True},
        status_code=status_code,
    )


@router.get("/login", response_class=HTMLResponse)
async def oidc_login(request: Request, _: Anyone, next: str = "/") -> Response:  # noqa: A002
    """Send the browser to the identity provider (PKCE S256, state and nonce)."""
    if not oidc.enabled():
        return _refused(request, "Single sign-on is not configured here.", 404)
    try:
        started = await oidc.start(
            _client(request),
            redirect_uri=_redirect_uri(request),
            next_path=next,
            ip=client_ip(request),
        )
    except AppError as exc:
        response = _refused(request, exc.message, exc.status_code)
        response.headers.update(exc.headers)
        return response
    response = RedirectResponse(started.url, status_code=302)
    name, secure = _binding_cookie()
    response.set_cookie(
        name,
        started.binding,
        max_age=oidc.TRANSACTION_MINUTES * 60,
        path="/auth/oidc",
        httponly=True,
        secure=secure,
        samesite="lax",
    )
    return response


@router.get("/callback", response_class=HTMLResponse, name="oidc_callback")
async def oidc_callback(
    request: Request,
    session: SessionDep,
    _: Anyone,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
) -> Response:
    """Finish the sign-in: check the ID token, create or link the user, open a session."""
    ip, ua = client_ip(request), request.headers.get("user-agent")
    name, _secure = _binding_cookie()
    who: str | None = None
    try:
        if not oidc.enabled():
            raise oidc.OidcRefused("Single sign-on is not configured here.", reason="disabled")
        await run_in_threadpool(ratelimit.check_signin, ip=ip, username=None)
        identity, next_path = await oidc.exchange(
            _client(request),
            state=state,
            code=code,
            error=error,
            binding=request.cookies.get(name),
        )
        who = identity.preferred_username or identity.email or identity.subject
        await run_in_threadpool(ratelimit.check_signin, ip=None, username=f"sso:{who}")
        opened = await run_in_threadpool(
            oidc.sign_in,
            session,
            identity=identity,
            ip=ip,
            ua=ua,
            old_cookie=request.cookies.get(get_settings().session_cookie_name),
        )
    except oidc.OidcRefused as exc:
        session.rollback()
        oidc.record_refusal(session, reason=exc.reason, ip=ip, ua=ua, who=who)
        response = _refused(request, exc.message, exc.status_code)
        response.delete_cookie(name, path="/auth/oidc")
        return response
    except RateLimited as exc:
        oidc.record_refusal(session, reason="rate-limited", ip=ip, ua=ua, who=who)
        response = _refused(request, exc.message, exc.status_code)
        response.headers.update(exc.headers)
        return response
    response = RedirectResponse(next_path, status_code=303)
    _set_cookie(response, opened.cookie_value)
    response.delete_cookie(name, path="/auth/oidc")
    return response


@router.post("/logout")
async def oidc_logout(request: Request, session: SessionDep, principal: SignedIn) -> Response:
    """End our session, then sign out at the provider when it offers an end-session endpoint."""
    await run_in_threadpool(auth_service.sign_out, session, principal=principal)
    target = "/login"
    if oidc.enabled():
        back = str(request.url_for("login_page"))
        url = await oidc.logout_url(_client(request), post_logout_redirect_uri=back)
        target = url or target
    response = RedirectResponse(target, status_code=303)
    _clear_cookie(response)
    return response
