"""Sign-in page, the JSON session API, and the admin's user pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session
from starlette.datastructures import FormData

from server.auth import passwords
from server.auth import service as auth_service
from server.auth.deps import (
    AdminDep,
    Anyone,
    RowId,
    SessionDep,
    SignedIn,
    check_origin,
    client_ip,
)
from server.auth.schemas import MeView, SignInRequest
from server.config import get_settings
from server.errors import AppError
from server.models import Role, Scope, User
from server.web import forms
from server.web.templates import render

router = APIRouter()


def _set_cookie(response: Response, value: str) -> None:
    settings = get_settings()
    response.set_cookie(
        settings.session_cookie_name,
        value,
        httponly=True,
        samesite="lax",
        secure=settings.production,
        path="/",
        max_age=settings.session_max_hours * 3600,
    )


def _clear_cookie(response: Response) -> None:
    settings = get_settings()
    response.delete_cookie(
        settings.session_cookie_name,
        path="/",
        secure=settings.production,
        httponly=True,
        samesite="lax",
    )


def _demo_codes(request: Request) -> list[tuple[str, str]]:
    """Current TOTP codes of the demo accounts, shown only by `chartdesk demo`."""
    demo = getattr(request.app.state, "demo_users", None)
    if not demo or get_settings().production:
        return []
    return [(name, passwords.current_totp(secret)) for name, secret in demo]


# ---------------------------------------------------------------- pages


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, _: Anyone, next: str = "/", expired: int = 0) -> Response:  # noqa: A002
    """The sign-in form."""
    return render(
        request,
        "auth/login.html",
        {
            "next": next if next.startswith("/") and not next.startswith("//") else "/",
            "expired": bool(expired),
            "demo_codes": _demo_codes(request),
            "oidc_enabled": bool(getattr(request.app.state, "oidc_enabled", False)),
        },
    )


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    session: SessionDep,
    _: Anyone,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    totp: Annotated[str, Form(max_length=12)] = "",
    next: Annotated[str, Form(max_length=300)] = "/",  # noqa: A002
) -> Response:
    """Check the form; on success a new session and a redirect home."""
    check_origin(request)

    def failed(req: Request, _own: Session, exc: AppError, _form: FormData) -> Response:
        return render(
            req,
            "auth/login.html",
            {
                "error": exc.message,
                "username": username,
                "next": next,
                "demo_codes": _demo_codes(req),
                "oidc_enabled": bool(getattr(req.app.state, "oidc_enabled", False)),
            },
            status_code=exc.status_code,
        )

    forms.on_error(request, failed)
    opened = auth_service.sign_in(
        session,
        username=username,
        password=password,
        totp=totp,
        ip=client_ip(request),
        ua=request.headers.get("user-agent"),
        old_cookie=request.cookies.get(get_settings().session_cookie_name),
    )
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    _set_cookie(response, opened.cookie_value)
    return response


@router.post("/logout")
def logout(session: SessionDep, principal: SignedIn) -> Response:
    """Sign out: the session row is deleted, the cookie cleared."""
    auth_service.sign_out(session, principal=principal)
    response = RedirectResponse("/login", status_code=303)
    _clear_cookie(response)
    return response


@router.get("/admin/users", response_class=HTMLResponse)
def admin_users(request: Request, session: SessionDep, _: AdminDep) -> Response:
    """List users with their roles, status and actions."""
    return render(
        request,
        "admin/users.html",
        {
            "users": auth_service.list_users(session),
            "all_roles": [r.value for r in Role],
        },
    )


def _create_failed(request: Request, session: Session, exc: AppError, form: FormData) -> Response:
    """The users page again with the new user's name and roles as typed, and why it failed."""
    return render(
        request,
        "admin/users.html",
        {
            "users": auth_service.list_users(session),
            "all_roles": [r.value for r in Role],
            "form_username": str(form.get("username") or ""),
            "form_roles": [str(r) for r in form.getlist("roles")],
            "form_npi": str(form.get("npi") or ""),
            "error": forms.message(exc),
            "errors": forms.field_errors(exc),
        },
        status_code=exc.status_code,
    )


@router.post("/admin/users", response_class=HTMLResponse)
def admin_create_user(
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_create_failed))],
    username: Annotated[str, Form(max_length=64)],
    roles: Annotated[list[str], Form()],
    npi: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Create a user; the password and TOTP URI are shown once (a provider needs an NPI)."""
    created = auth_service.create_user(
        session, username=username, roles=roles, actor=principal, npi=npi.strip() or None
    )
    return render(
        request,
        "admin/users.html",
        {
            "users": auth_service.list_users(session),
            "all_roles": [r.value for r in Role],
            "created": created,
        },
    )


@router.post("/admin/users/{user_id}/roles")
def admin_set_roles(
    session: SessionDep,
    principal: AdminDep,
    user_id: RowId,
    roles: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Replace a user's roles."""
    auth_service.set_roles(session, actor=principal, user_id=user_id, roles=roles or [])
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id}/disable")
def admin_disable(session: SessionDep, principal: AdminDep, user_id: RowId) -> Response:
    """Disable an account and end its sessions."""
    auth_service.set_active(session, actor=principal, user_id=user_id, active=False)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id}/enable")
def admin_enable(session: SessionDep, principal: AdminDep, user_id: RowId) -> Response:
    """Enable an account (and clear a lockout)."""
    auth_service.set_active(session, actor=principal, user_id=user_id, active=True)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id}/reset-totp", response_class=HTMLResponse)
def admin_reset_totp(
    request: Request, session: SessionDep, principal: AdminDep, user_id: RowId
) -> Response:
    """Issue a new TOTP secret; the new otpauth URI is shown once."""
    uri = auth_service.reset_totp(session, actor=principal, user_id=user_id)
    user = session.get(User, user_id)
    return render(
        request,
        "admin/users.html",
        {
            "users": auth_service.list_users(session),
            "all_roles": [r.value for r in Role],
            "reset": (user.username if user else "", uri),
        },
    )


# ---------------------------------------------------------------- service tokens


def _tokens_page(
    request: Request,
    session: Session,
    *,
    created: tuple[str, str] | None = None,
    message: str | None = None,
    error: AppError | None = None,
    form: FormData | None = None,
) -> Response:
    return render(
        request,
        "admin/tokens.html",
        {
            "tokens": auth_service.list_tokens(session),
            "all_scopes": [s.value for s in Scope],
            "created": created,
            "message": message,
            "error": forms.message(error) if error else None,
            "errors": forms.field_errors(error),
            "form_name": str(form.get("name") or "") if form else "",
            "form_scopes": [str(v) for v in form.getlist("scopes")] if form else [],
        },
        status_code=error.status_code if error else 200,
    )


def _token_failed(request: Request, session: Session, exc: AppError, form: FormData) -> Response:
    return _tokens_page(request, session, error=exc, form=form)


@router.get("/admin/tokens", response_class=HTMLResponse)
def admin_tokens(request: Request, session: SessionDep, _: AdminDep) -> Response:
    """Service tokens (interface engine, billing system, SIEM): list, create, revoke."""
    return _tokens_page(request, session)


@router.post("/admin/tokens", response_class=HTMLResponse)
def admin_create_token(
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_token_failed))],
    name: Annotated[str, Form(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")],
    scopes: Annotated[list[str], Form()],
) -> Response:
    """Create a token; its secret is shown once, here, and never again."""
    token, plaintext = auth_service.create_token(session, name=name, scopes=scopes, actor=principal)
    return _tokens_page(request, session, created=(token.name, plaintext))


@router.post("/admin/tokens/{name}/revoke", response_class=HTMLResponse)
def admin_revoke_token(
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_token_failed))],
    name: Annotated[str, PathParam(max_length=100)],
) -> Response:
    """Revoke a token: every system using it is refused from now on."""
    auth_service.revoke_token(session, name=name, actor=principal)
    return _tokens_page(request, session, message=f"Token {name} revoked.")


# ---------------------------------------------------------------- JSON session API


@router.post("/api/v1/session", response_model=MeView, tags=["session"])
def api_sign_in(
    request: Request, body: SignInRequest, session: SessionDep, _: Anyone, response: Response
) -> MeView:
    """Sign in with password and TOTP; sets the session cookie."""
    check_origin(request)
    opened = auth_service.sign_in(
        session,
        username=body.username,
        password=body.password,
        totp=body.totp,
        ip=client_ip(request),
        ua=request.headers.get("user-agent"),
        old_cookie=request.cookies.get(get_settings().session_cookie_name),
    )
    _set_cookie(response, opened.cookie_value)
    return MeView(
        username=opened.user.username,
        roles=sorted(opened.roles),
        csrf_token=opened.record.csrf_token,
    )


@router.get("/api/v1/me", response_model=MeView, tags=["session"])
def api_me(principal: SignedIn) -> MeView:
    """The signed-in person and their CSRF token."""
    return MeView(
        username=principal.name,
        roles=sorted(principal.roles),
        csrf_token=principal.csrf_token or "",
    )


@router.delete("/api/v1/session", status_code=204, tags=["session"])
def api_sign_out(session: SessionDep, principal: SignedIn) -> Response:
    """Sign out."""
    auth_service.sign_out(session, principal=principal)
    response = Response(status_code=204)
    _clear_cookie(response)
    return response
