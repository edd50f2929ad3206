"""Every route declares who may call it; security headers are on every response."""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.routing import Mount

from server.main import create_app
from tests.support.routes import access_rules, all_routes, api_routes

# Routes FastAPI itself adds: the published contract and (development only) its viewer.
FRAMEWORK_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}


def test_every_route_declares_exactly_one_access_rule():
    app = create_app(check_migrations=False)
    undeclared, ambiguous = [], []
    for route in all_routes(app):
        if isinstance(route, APIRoute):
            rules = {type(r).__name__ + r.describe() for r in access_rules(route.dependant)}
            if not rules:
                undeclared.append(route.path)
            elif len(rules) > 1:
                ambiguous.append((route.path, sorted(rules)))
        elif isinstance(route, Mount):
            assert route.path == "/static", f"unexpected mount {route.path}"
        else:
            assert route.path in FRAMEWORK_ROUTES, f"unexpected route {route.path}"
    assert undeclared == [], f"routes without an access rule: {undeclared}"
    assert ambiguous == [], f"routes with conflicting rules: {ambiguous}"


def test_a_route_without_a_rule_is_caught():
    from fastapi import APIRouter

    app = create_app(check_migrations=False)
    stray = APIRouter()

    @stray.get("/stray")
    def stray_route() -> dict[str, str]:
        return {}

    app.include_router(stray)
    missing = [r.path for r in api_routes(app) if not access_rules(r.dependant)]
    assert missing == ["/stray"]


def test_security_headers_on_pages_api_and_errors(client):
    for path in ("/login", "/healthz", "/api/v1/me", "/no-such-page", "/api/v1/nothing"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code < 500
        h = r.headers
        assert "script-src 'self'" in h["content-security-policy"]
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "no-referrer"
        assert h["cache-control"] == "no-store"
    assert client.get("/api/v1/nothing").json()["error"]["code"] == "not_found"


def test_health_ready_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    client.get("/login")
    assert 'route="/login"' in client.get("/metrics").text


def test_server_refuses_a_database_behind_its_migrations(tmp_path, monkeypatch):
    import pytest
    from fastapi.testclient import TestClient

    from tests.conftest import reset_caches

    monkeypatch.setenv("CHARTDESK_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    reset_caches()
    try:
        with pytest.raises(Exception, match="chartdesk migrate"), TestClient(create_app()):
            pass
    finally:
        reset_caches()


def test_body_over_the_limit_is_413(client, monkeypatch):
    from tests.conftest import reset_caches

    monkeypatch.setenv("CHARTDESK_MAX_BODY_BYTES", "2048")
    reset_caches()
    r = client.post(
        "/api/v1/session", content=b"x" * 5000, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
