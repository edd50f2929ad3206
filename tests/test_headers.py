"""Security headers on every route the app has, whoever calls and however it ends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.auth.deps import Public
from server.config import PROJECT_ROOT, get_settings
from server.main import create_app
from tests.support.factories import make_user, sign_in
from tests.support.routes import access_rules, api_routes

PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")
SAMPLE = {"name": "default", "username": "nobody", "format": "csv"}


def concrete(path: str) -> str:
    """A path template with every parameter filled with a plausible value."""
    return PARAM.sub(lambda m: SAMPLE.get(m.group(1), "1"), path)


def every_request(app) -> list[tuple[str, str]]:
    """(method, path) for every route and method of the app (HEAD aside)."""
    found = []
    for route in api_routes(app):
        for method in sorted(route.methods - {"HEAD"}):
            found.append((method, concrete(route.path)))
    return found


def public_requests(app) -> set[tuple[str, str]]:
    """(method, path) of the routes anyone may call (no session, so no CSRF check)."""
    found = set()
    for route in api_routes(app):
        rules = access_rules(route.dependant)
        if not rules or isinstance(rules[0], Public):
            found |= {(m, concrete(route.path)) for m in route.methods - {"HEAD"}}
    return found


def check(response, *, where: str, production: bool = False) -> None:
    h = response.headers
    assert response.status_code < 500, where
    csp = h.get("content-security-policy", "")
    directives = dict(
        (part.strip().split(" ", 1) + [""])[:2] for part in csp.split(";") if part.strip()
    )
    assert directives.get("script-src") == "'self'", where  # no inline script, no eval
    assert "unsafe-inline" not in csp, where
    assert directives.get("frame-ancestors") == "'none'", where
    assert directives.get("object-src") == "'none'", where
    assert h.get("x-content-type-options") == "nosniff", where
    assert h.get("referrer-policy") == "no-referrer", where
    assert h.get("x-frame-options") == "DENY", where
    # Every non-static answer may hold patient data: never stored by a browser or proxy.
    assert h.get("cache-control") == "no-store", where
    if production:
        hsts = h.get("strict-transport-security", "")
        assert "max-age=" in hsts, where
        assert int(hsts.split("max-age=")[1].split(";")[0]) >= 31536000, where
    else:
        assert "strict-transport-security" not in h, where


def _refused_for_csrf(response) -> bool:
    return "csrf_failed" in response.text or "invalid CSRF token" in response.text


def test_headers_on_every_route_anonymous_and_signed_in(app, make_client):
    requests = every_request(app)
    assert len(requests) > 10
    anonymous = make_client()
    for method, path in requests:
        r = anonymous.request(method, path, json={}, follow_redirects=False)
        check(r, where=f"anonymous {method} {path}")
    make_user("bystander", "coder")  # id 1: the /admin/users/1/... calls act on someone else
    root = make_user("root", "coder", "supervisor", "biller", "compliance", "admin")
    signed_in = make_client()
    sign_in(signed_in, root)  # unsafe requests now carry the right X-CSRF-Token
    for method, path in requests:
        r = signed_in.request(method, path, json={}, follow_redirects=False)
        where = f"signed-in {method} {path}"
        check(r, where=where)
        assert not _refused_for_csrf(r), f"{where}: refused for CSRF with the right token"
        if method != "GET" and signed_in.get("/api/v1/me").status_code == 401:
            sign_in(signed_in, root)  # that call ended the session (sign-out)
    # Refusals carry the headers too: every unsafe request again, with a wrong token.
    wrong_csrf = {"X-CSRF-Token": "not-the-token"}
    public = public_requests(app)
    for method, path in requests:
        if method == "GET" or (method, path) in public:
            continue
        r = signed_in.request(method, path, json={}, headers=wrong_csrf, follow_redirects=False)
        where = f"signed-in, wrong CSRF token, {method} {path}"
        check(r, where=where)
        assert r.status_code == 403, where
        assert _refused_for_csrf(r), where


def test_hsts_in_production(db_url, monkeypatch):
    monkeypatch.setenv("CHARTDESK_ENV", "production")
    get_settings.cache_clear()
    with TestClient(create_app(), base_url="https://testserver") as client:
        for method, path in every_request(client.app):
            r = client.request(method, path, json={}, follow_redirects=False)
            check(r, where=f"production {method} {path}", production=True)


def test_static_files_carry_the_headers_but_may_be_cached(client):
    r = client.get("/static/app.css")
    assert r.status_code == 200
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers.get("cache-control") != "no-store"


@pytest.mark.parametrize(
    "template", sorted((PROJECT_ROOT / "templates").rglob("*.html")), ids=lambda p: p.name
)
def test_templates_have_no_inline_script_or_event_handlers(template: Path):
    """The CSP would block them anyway; this keeps a page from silently breaking."""
    text = template.read_text()
    for tag in re.findall(r"<script\b[^>]*>", text, flags=re.I):
        assert "src=" in tag, f"inline <script> in {template}"
    assert not re.search(r"<script\b[^>]*>(?!\s*</script>)", text, flags=re.I), template
    assert not re.search(r"\son[a-z]+\s*=", text, flags=re.I), f"on*= handler in {template}"
    assert "javascript:" not in text.lower(), template
