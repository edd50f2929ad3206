"""Hospital single sign-on against a real OpenID Connect provider process (oidc-provider-mock)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import oidc_provider_mock
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from server.auth import service as auth_service
from server.config import get_settings
from server.db import get_engine
from server.models import AuditEvent, User, UserSession
from tests.support.factories import make_user
from tests.support.factories import sign_in as password_sign_in

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The httpx module is deprecated"),
]

ROLE_MAP = {"hims-coders": ["coder"], "hims-leads": ["supervisor"], "rev-cycle": ["biller"]}


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    """A real OpenID Connect provider on a free port, for the whole module."""
    with oidc_provider_mock.run_server_in_thread() as server:
        yield f"http://127.0.0.1:{server.server_port}"


class Sso:
    """The app configured for single sign-on, with helpers that drive the real provider."""

    def __init__(self, issuer: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.issuer = issuer
        self.monkeypatch = monkeypatch
        self.clients: list[TestClient] = []

    def configure(self, **env: Any) -> None:
        base = {
            "OIDC_DISCOVERY_URL": f"{self.issuer}/.well-known/openid-configuration",
            "OIDC_CLIENT_ID": "chartdesk",
            "OIDC_CLIENT_SECRET": "s3cret-for-tests",
            "OIDC_ROLE_MAP": json.dumps(ROLE_MAP),
            "OIDC_AUTO_CREATE": "true",
            "OIDC_REQUIRE_MFA": "false",
        }
        base.update({k.upper(): v for k, v in env.items()})
        for key, value in base.items():
            self.monkeypatch.setenv(f"CHARTDESK_{key}", str(value))
        get_settings.cache_clear()

    def client(self) -> TestClient:
        from server.main import create_app

        c = TestClient(create_app(), base_url="http://testserver")
        c.__enter__()
        self.clients.append(c)
        return c

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        r = httpx.put(f"{self.issuer}/users/{sub}", json=claims)
        assert r.status_code == 204, r.text

    def authorize_url(self, client: TestClient, next_path: str = "/") -> str:
        r = client.get("/auth/oidc/login", params={"next": next_path}, follow_redirects=False)
        assert r.status_code == 302, r.text
        return r.headers["location"]

    def at_provider(self, authorize_url: str, sub: str, action: str | None = None) -> str:
        """Sign in (or deny) at the provider; returns the callback path + query it sends back."""
        form = {"sub": sub} if action is None else {"action": action}
        r = httpx.post(authorize_url, data=form, follow_redirects=False)
        assert r.status_code == 302, r.text
        parts = urlsplit(r.headers["location"])
        assert parts.path == "/auth/oidc/callback"
        return f"{parts.path}?{parts.query}"

    def sign_in(self, client: TestClient, sub: str, claims: dict[str, Any]) -> httpx.Response:
        self.set_user(sub, claims)
        callback = self.at_provider(self.authorize_url(client), sub)
        return client.get(callback, follow_redirects=False)


@pytest.fixture
def sso(issuer: str, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sso]:
    helper = Sso(issuer, monkeypatch)
    helper.configure()
    yield helper
    for c in helper.clients:
        c.__exit__(None, None, None)


def _audit(action: str) -> list[AuditEvent]:
    with Session(get_engine()) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def _sessions() -> int:
    with Session(get_engine()) as s:
        return len(s.exec(select(UserSession)).all())


def test_first_sign_in_creates_the_user_with_roles_from_groups(sso):
    client = sso.client()
    login = client.get("/login")
    assert "/auth/oidc/login" in login.text  # the button shows when SSO is configured
    r = sso.sign_in(
        client,
        "u-1001",
        {"preferred_username": "mara", "name": "Mara Lee", "groups": ["hims-coders", "other"]},
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/"
    me = client.get("/api/v1/me").json()
    assert me["username"] == "mara"
    assert me["roles"] == ["coder"]
    with Session(get_engine()) as s:
        user = s.exec(select(User).where(User.username == "mara")).one()
        assert user.oidc_subject == f"{sso.issuer}|u-1001"
        assert user.password_hash is None  # no local password for an SSO-only account
        record = s.exec(select(UserSession)).one()
        assert record.auth_method == "oidc"
    signed_in = _audit("sign-in")
    assert [e.detail for e in signed_in] == ["method=oidc"]
    assert signed_in[0].actor == "mara"


def test_groups_remap_roles_on_every_sign_in(sso):
    client = sso.client()
    assert sso.sign_in(client, "u-2", {"preferred_username": "ravi", "groups": ["hims-coders"]})
    assert client.get("/api/v1/me").json()["roles"] == ["coder"]
    other = sso.client()
    r = sso.sign_in(
        other, "u-2", {"preferred_username": "ravi", "groups": ["hims-leads", "hims-coders"]}
    )
    assert r.status_code == 303
    assert other.get("/api/v1/me").json()["roles"] == ["coder", "supervisor"]
    with Session(get_engine()) as s:
        assert len(s.exec(select(User).where(User.username == "ravi")).all()) == 1


def test_existing_user_is_linked_by_username_when_auto_create_is_off(sso):
    sso.configure(oidc_auto_create="false")
    acct = make_user("dana", "biller")
    client = sso.client()
    r = sso.sign_in(client, "idp-dana", {"preferred_username": "Dana", "groups": ["rev-cycle"]})
    assert r.status_code == 303
    assert client.get("/api/v1/me").json() == {
        "username": "dana",
        "roles": ["biller"],
        "csrf_token": client.get("/api/v1/me").json()["csrf_token"],
    }
    with Session(get_engine()) as s:
        user = s.get(User, acct.user_id)
        assert user is not None
        assert user.oidc_subject == f"{sso.issuer}|idp-dana"


def test_unknown_user_is_refused_when_auto_create_is_off(sso):
    sso.configure(oidc_auto_create="false")
    client = sso.client()
    r = sso.sign_in(client, "stranger", {"preferred_username": "stranger", "groups": ["x"]})
    assert r.status_code == 403
    assert "not linked" in r.text
    assert client.get("/api/v1/me").status_code == 401
    assert _sessions() == 0
    with Session(get_engine()) as s:
        assert s.exec(select(User)).all() == []
    assert [e.detail for e in _audit("sign-in-failed")] == ["oidc:unknown-user"]


def test_a_group_with_no_mapped_role_is_refused(sso):
    client = sso.client()
    r = sso.sign_in(client, "u-3", {"preferred_username": "nora", "groups": ["cafeteria"]})
    assert r.status_code == 403
    assert _sessions() == 0


def test_denied_at_the_provider_is_refused_and_audited(sso):
    client = sso.client()
    callback = sso.at_provider(sso.authorize_url(client), "u-4", action="deny")
    assert "error=access_denied" in callback
    r = client.get(callback, follow_redirects=False)
    assert r.status_code == 401
    assert "cancelled or refused" in r.text, r.text[r.text.find("sso-error") :][:300]
    assert _sessions() == 0
    assert [e.detail for e in _audit("sign-in-failed")] == ["oidc:idp-access_denied"]


def test_the_authorization_request_uses_pkce_state_and_nonce(sso):
    client = sso.client()
    url = sso.authorize_url(client)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert len(query["state"][0]) >= 20
    assert len(query["nonce"][0]) >= 20
    assert query["client_id"] == ["chartdesk"]
    # The browser holds a random binding value only, scoped to the SSO paths.
    cookie = next(c for c in client.cookies.jar if c.name == "chartdesk_oidc")
    assert cookie.path == "/auth/oidc"
    assert query["state"][0] not in cookie.value


def test_tampered_state_is_refused(sso):
    client = sso.client()
    sso.set_user("u-5", {"preferred_username": "omar", "groups": ["hims-coders"]})
    callback = sso.at_provider(sso.authorize_url(client), "u-5")
    parts = urlsplit(callback)
    query = parse_qs(parts.query)
    query["state"] = ["forged-" + query["state"][0][7:]]
    r = client.get(f"{parts.path}?{urlencode(query, doseq=True)}", follow_redirects=False)
    assert r.status_code == 401
    assert _sessions() == 0
    assert [e.detail for e in _audit("sign-in-failed")] == ["oidc:unknown-state"]


def test_wrong_nonce_in_the_id_token_is_refused(sso):
    client = sso.client()
    sso.set_user("u-6", {"preferred_username": "lia", "groups": ["hims-coders"]})
    url = sso.authorize_url(client)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    query["nonce"] = ["a-nonce-we-never-issued"]
    forged = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    r = client.get(sso.at_provider(forged, "u-6"), follow_redirects=False)
    assert r.status_code == 401
    assert _sessions() == 0
    (event,) = _audit("sign-in-failed")
    assert event.detail is not None
    assert event.detail.startswith("oidc:id-token:")


def test_callback_in_another_browser_and_replayed_code_are_refused(sso):
    first, other = sso.client(), sso.client()
    sso.set_user("u-7", {"preferred_username": "ken", "groups": ["hims-coders"]})
    callback = sso.at_provider(sso.authorize_url(first), "u-7")
    # Login CSRF: someone else's callback URL opened in our browser.
    assert other.get(callback, follow_redirects=False).status_code == 401
    # The transaction is single use: even the right browser cannot use it again.
    assert first.get(callback, follow_redirects=False).status_code == 401
    assert _sessions() == 0


def test_an_id_token_from_another_issuer_is_refused(sso):
    client = sso.client()
    sso.set_user("u-8", {"preferred_username": "ivy", "groups": ["hims-coders"]})
    url = sso.authorize_url(client)
    callback = sso.at_provider(url, "u-8")
    # The provider names itself after the host it is reached on: fetching the token from
    # "localhost" makes it sign an ID token with a different `iss` than discovery said.
    oauth_client = client.app.state.oidc_client  # type: ignore[attr-defined]
    endpoint = oauth_client.server_metadata["token_endpoint"]
    oauth_client.server_metadata["token_endpoint"] = endpoint.replace("127.0.0.1", "localhost")
    r = client.get(callback, follow_redirects=False)
    assert r.status_code == 401
    assert _sessions() == 0
    (event,) = _audit("sign-in-failed")
    assert event.detail is not None
    assert event.detail.startswith("oidc:id-token:")


def test_mfa_is_required_when_configured(sso):
    sso.configure(oidc_require_mfa="true", oidc_mfa_acr_values='["urn:hospital:loa:2"]')
    client = sso.client()
    r = sso.sign_in(client, "u-9", {"preferred_username": "pat", "groups": ["hims-coders"]})
    assert r.status_code == 403
    assert "multi-factor" in r.text
    assert _sessions() == 0
    assert [e.detail for e in _audit("sign-in-failed")] == ["oidc:no-mfa"]
    claims = {"preferred_username": "pat", "groups": ["hims-coders"], "amr": ["pwd", "otp"]}
    assert sso.sign_in(client, "u-9", claims).status_code == 303
    other = sso.client()
    claims = {"preferred_username": "pat", "groups": ["hims-coders"], "acr": "urn:hospital:loa:2"}
    assert sso.sign_in(other, "u-9", claims).status_code == 303
    assert _sessions() == 2


def test_sign_in_replaces_an_existing_session_id(sso):
    acct = make_user("gus", "coder")
    client = sso.client()
    password_sign_in(client, acct)
    before = client.cookies.get("chartdesk_session")
    r = sso.sign_in(client, "u-10", {"preferred_username": "gus", "groups": ["hims-coders"]})
    assert r.status_code == 303
    after = client.cookies.get("chartdesk_session")
    assert after
    assert after != before
    with Session(get_engine()) as s:
        assert s.get(UserSession, auth_service.sha256_hex(before or "")) is None


def test_sign_out_ends_our_session_and_goes_to_the_provider(sso):
    client = sso.client()
    sso.sign_in(client, "u-11", {"preferred_username": "zoe", "groups": ["hims-coders"]})
    home = client.get("/home")
    assert 'action="/auth/oidc/logout"' in home.text
    csrf = client.get("/api/v1/me").json()["csrf_token"]
    r = client.post("/auth/oidc/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    assert f"{target.scheme}://{target.netloc}" == sso.issuer
    assert target.path == "/oauth2/end_session"
    assert parse_qs(target.query)["post_logout_redirect_uri"] == ["http://testserver/login"]
    assert client.get("/api/v1/me").status_code == 401
    assert _sessions() == 0
    assert len(_audit("sign-out")) == 1
    # Without the CSRF token sign-out is refused (no forced logout from another site).
    client2 = sso.client()
    sso.sign_in(client2, "u-11", {"preferred_username": "zoe", "groups": ["hims-coders"]})
    assert client2.post("/auth/oidc/logout", follow_redirects=False).status_code == 403


def test_login_without_configuration_is_a_plain_404_page(db_url, client):
    assert "/auth/oidc/login" not in client.get("/login").text
    assert client.get("/auth/oidc/login", follow_redirects=False).status_code == 404
