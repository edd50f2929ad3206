"""The admin's user page: a new account's authenticator set-up as a QR code beside its URI."""

from __future__ import annotations

import re
import urllib.parse

from tests.support.coding import signed_in


def test_a_new_user_gets_a_scannable_qr_code_of_the_same_uri(make_client):
    admin = signed_in(make_client, "root", "admin")
    r = admin.post(
        "/admin/users",
        data={"csrf_token": admin.headers["X-CSRF-Token"], "username": "nia", "roles": "coder"},
    )
    assert r.status_code == 200
    uri = re.search(r"<code>(otpauth://[^<]+)</code>", r.text)
    assert uri
    qr = re.search(r'<img class="totp-qr" src="(data:image/svg\+xml[^"]+)"', r.text)
    assert qr
    svg = urllib.parse.unquote(qr.group(1).split(",", 1)[1])
    assert svg.startswith("<svg") or "<svg" in svg[:200]
    assert 'alt="QR code of the authenticator set-up for nia"' in r.text


def test_service_tokens_are_created_once_listed_and_revoked_on_a_page(make_client, client):
    admin = signed_in(make_client, "root", "admin")
    csrf = admin.headers["X-CSRF-Token"]
    bad = admin.post("/admin/tokens", data={"csrf_token": csrf, "name": "engine"})
    assert bad.status_code == 422  # no scope: the form comes back with the name kept
    assert 'value="engine"' in bad.text
    made = admin.post(
        "/admin/tokens", data={"csrf_token": csrf, "name": "engine", "scopes": ["ingest"]}
    )
    assert made.status_code == 200
    secret = re.search(r'<code id="token-secret">([^<]+)</code>', made.text)
    assert secret
    client.headers["Authorization"] = f"Bearer {secret.group(1)}"
    assert client.post("/api/v1/encounters", json={}).status_code == 422  # let in: body refused
    listed = admin.get("/admin/tokens")
    assert secret.group(1) not in listed.text  # shown once, never again
    assert re.search(r'id="token-engine".*?ingest.*?active', listed.text, re.S)
    gone = admin.post("/admin/tokens/engine/revoke", data={"csrf_token": csrf})
    assert gone.status_code == 200
    assert "Token engine revoked." in gone.text
    assert client.post("/api/v1/encounters", json={}).status_code == 401
