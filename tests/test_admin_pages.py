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
