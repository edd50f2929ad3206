"""Home pages per role, health checks and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from sqlalchemy import text

from server.auth import service as auth_service
from server.auth.deps import Anyone, SessionDep, SignedIn
from server.web.middleware import metrics_text
from server.web.templates import render

router = APIRouter()

# What each role's home offers; later issues add pages and the links light up.
ROLE_LINKS: dict[str, list[tuple[str, str]]] = {
    "coder": [
        ("My work", "/work"),
        ("My physician queries", "/queries?status="),
    ],
    "supervisor": [
        ("Queues", "/supervise"),
        ("Routing rules", "/routing"),
        ("Escalated physician queries", "/queries?status=escalated"),
        ("Physician query report", "/reports/queries"),
    ],
    "biller": [("Ready to bill", "/billing")],
    "compliance": [("Audit log", "/compliance")],
    "admin": [("Users", "/admin/users")],
    "provider": [("Open queries", "/queries")],
}


@router.get("/", response_class=HTMLResponse)
def root(request: Request, _: Anyone) -> Response:
    """Send people to their home (or to sign in)."""
    return RedirectResponse("/home", status_code=303)


@router.get("/home", response_class=HTMLResponse)
def home(request: Request, principal: SignedIn) -> Response:
    """A home page with one section per role the person holds."""
    assert principal.session is not None  # noqa: S101
    idle_at, absolute_at = auth_service.session_deadlines(principal.session)
    sections = [(role, ROLE_LINKS[role]) for role in ROLE_LINKS if role in principal.roles]
    return render(
        request,
        "home/home.html",
        {"sections": sections, "idle_at": idle_at, "absolute_at": absolute_at},
    )


@router.get("/healthz", tags=["operations"])
def healthz(_: Anyone) -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"])
def readyz(request: Request, session: SessionDep, _: Anyone) -> Response:
    """The database answers and the keyring (when configured) loads."""
    problems: list[str] = []
    try:
        session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means not ready
        problems.append("database")
    check = getattr(request.app.state, "keyring_check", None)
    if check is not None:
        try:
            check()
        except Exception:  # noqa: BLE001
            problems.append("keyring")
    if problems:
        return JSONResponse({"status": "unavailable", "failing": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
def metrics(_: Anyone) -> str:
    """Prometheus text: request counts and time per route template (no ids, no PHI)."""
    return metrics_text()
