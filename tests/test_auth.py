"""Sign-in with password + TOTP, sessions, lockout, CSRF and service tokens."""

from __future__ import annotations

from datetime import timedelta

import pyotp
from sqlmodel import Session, select

from server.db import get_engine
from server.models import AuditEvent, User, UserSession
from tests.support.factories import fresh_totp, make_token, make_user, sign_in


def test_sign_in_returns_roles_and_csrf_and_me_matches(client):
    acct = make_user("ana", "coder", "supervisor")
    body = sign_in(client, acct)
    assert body["username"] == "ana"
    assert body["roles"] == ["coder", "supervisor"]
    me = client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json() == body


def test_session_cookie_is_httponly_lax_and_stored_hashed(client):
    acct = make_user("ana", "coder")
    resp = client.post(
        "/api/v1/session",
        json={"username": "ana", "password": acct.password, "totp": fresh_totp(acct)},
    )
    cookie_header = resp.headers["set-cookie"]
    assert "HttpOnly" in cookie_header
    assert "SameSite=lax" in cookie_header
    value = client.cookies.get("chartdesk_session")
    with Session(get_engine()) as s:
        ids = s.exec(select(UserSession.id)).all()
    assert len(ids) == 1
    assert value not in ids[0]


def test_wrong_password_wrong_code_and_unknown_user_get_the_same_answer(client):
    acct = make_user("ana", "coder")
    answers = [
        client.post(
            "/api/v1/session",
            json={"username": "ana", "password": "wrong-password-x", "totp": fresh_totp(acct)},
        ),
        client.post(
            "/api/v1/session", json={"username": "ana", "password": acct.password, "totp": "000000"}
        ),
        client.post(
            "/api/v1/session",
            json={"username": "nobody", "password": acct.password, "totp": "123456"},
        ),
        client.post(
            "/api/v1/session", json={"username": "ana", "password": acct.password, "totp": ""}
        ),
    ]
    assert {a.status_code for a in answers} == {401}
    assert len({a.json()["error"]["message"] for a in answers}) == 1
    with Session(get_engine()) as s:
        failed = s.exec(select(AuditEvent).where(AuditEvent.action == "sign-in-failed")).all()
    assert len(failed) == 4
    assert {e.outcome for e in failed} == {"denied"}


def test_five_failures_lock_the_account_even_for_the_right_password(client):
    acct = make_user("ana", "coder")
    for _ in range(5):
        r = client.post(
            "/api/v1/session",
            json={"username": "ana", "password": "nope-nope-nope", "totp": "000000"},
        )
        assert r.status_code == 401
    r = client.post(
        "/api/v1/session",
        json={"username": "ana", "password": acct.password, "totp": fresh_totp(acct)},
    )
    assert r.status_code == 401
    with Session(get_engine()) as s:
        user = s.exec(select(User).where(User.username == "ana")).one()
        assert user.locked_until is not None
        assert "lockout" in s.exec(select(AuditEvent.action)).all()
        # Fifteen minutes later the lock has passed.
        user.locked_until = user.locked_until - timedelta(minutes=16)
        s.add(user)
        s.commit()
    sign_in(client, acct)


def test_a_totp_code_cannot_be_replayed(make_client):
    acct = make_user("ana", "coder")
    code = fresh_totp(acct)
    first, second = make_client(), make_client()
    payload = {"username": "ana", "password": acct.password, "totp": code}
    assert first.post("/api/v1/session", json=payload).status_code == 200
    assert second.post("/api/v1/session", json=payload).status_code == 401


def test_sign_out_kills_the_old_cookie(client):
    acct = make_user("ana", "coder")
    sign_in(client, acct)
    old = client.cookies.get("chartdesk_session")
    assert client.delete("/api/v1/session").status_code == 204
    client.cookies.set("chartdesk_session", old)
    r = client.get("/api/v1/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"


def test_sign_in_gives_a_new_session_id_every_time(client):
    acct = make_user("ana", "coder")
    sign_in(client, acct)
    first = client.cookies.get("chartdesk_session")
    sign_in(client, acct)
    second = client.cookies.get("chartdesk_session")
    assert first != second
    with Session(get_engine()) as s:
        assert len(s.exec(select(UserSession)).all()) == 1  # the old one was replaced


def test_idle_session_times_out_on_the_server(client):
    acct = make_user("ana", "coder")
    sign_in(client, acct)
    with Session(get_engine()) as s:
        row = s.exec(select(UserSession)).one()
        row.last_seen_at = row.last_seen_at - timedelta(minutes=16)
        s.add(row)
        s.commit()
    r = client.get("/api/v1/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "session_expired"
    with Session(get_engine()) as s:
        assert s.exec(select(UserSession)).all() == []
        assert "session-timeout" in s.exec(select(AuditEvent.action)).all()


def test_absolute_timeout_even_when_active(client):
    acct = make_user("ana", "coder")
    sign_in(client, acct)
    with Session(get_engine()) as s:
        row = s.exec(select(UserSession)).one()
        row.created_at = row.created_at - timedelta(hours=12, minutes=1)
        s.add(row)
        s.commit()
    assert client.get("/api/v1/me").status_code == 401


def test_tampered_cookie_is_refused_not_500(client):
    acct = make_user("ana", "coder")
    sign_in(client, acct)
    client.cookies.set("chartdesk_session", client.cookies.get("chartdesk_session")[:-2] + "xx")
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/home", follow_redirects=False).status_code == 303


def test_unsafe_request_without_or_with_wrong_csrf_is_refused_and_changes_nothing(make_client):
    acct = make_user("ana", "coder")
    c = make_client()
    sign_in(c, acct)
    good = c.headers.pop("X-CSRF-Token")
    r = c.delete("/api/v1/session")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "csrf_failed"
    r = c.delete("/api/v1/session", headers={"X-CSRF-Token": "not-the-token"})
    assert r.status_code == 403
    # Another session's token does not work either.
    other = make_client()
    other_body = sign_in(other, make_user("bea", "coder"))
    r = c.delete("/api/v1/session", headers={"X-CSRF-Token": other_body["csrf_token"]})
    assert r.status_code == 403
    # Cross-site Origin is refused even with the right token.
    r = c.delete(
        "/api/v1/session", headers={"X-CSRF-Token": good, "Origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "bad_origin"
    assert c.get("/api/v1/me").status_code == 200  # still signed in: nothing changed
    with Session(get_engine()) as s:
        denied = s.exec(
            select(AuditEvent).where(AuditEvent.outcome == "denied", AuditEvent.detail == "csrf")
        ).all()
    assert len(denied) == 3


def test_plain_form_posts_carry_the_csrf_token_as_a_hidden_field(client):
    acct = make_user("ana", "coder")
    body = sign_in(client, acct)
    client.headers.pop("X-CSRF-Token")
    r = client.post("/logout", data={"csrf_token": "wrong"}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post("/logout", data={"csrf_token": body["csrf_token"]}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/api/v1/me").status_code == 401


def test_web_sign_in_form_redirects_home_and_shows_role_sections(client):
    acct = make_user("ana", "coder", "biller")
    r = client.post(
        "/login",
        data={
            "username": "ana",
            "password": acct.password,
            "totp": fresh_totp(acct),
            "next": "/home",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/home"
    page = client.get("/home")
    assert page.status_code == 200
    assert 'id="home-coder"' in page.text
    assert 'id="home-biller"' in page.text
    assert 'id="home-admin"' not in page.text


def test_web_sign_in_failure_shows_the_form_again(client):
    make_user("ana", "coder")
    r = client.post("/login", data={"username": "ana", "password": "x", "totp": "1"})
    assert r.status_code == 401
    assert "Invalid username, password or code." in r.text


def test_tokens_work_only_within_their_scope_and_never_for_people_routes(client):
    token = make_token("siem", "audit")
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    r = client.get("/api/v1/me", headers={"Authorization": "Bearer cdt_forged"})
    assert r.status_code == 401


def test_disabled_user_loses_sessions_and_cannot_sign_in(make_client):
    admin = make_user("root", "admin")
    ana = make_user("ana", "coder")
    a, c = make_client(), make_client()
    sign_in(a, admin)
    sign_in(c, ana)
    r = a.post(f"/admin/users/{ana.user_id}/disable", follow_redirects=False)
    assert r.status_code == 303
    assert c.get("/api/v1/me").status_code == 401
    r = c.post(
        "/api/v1/session",
        json={"username": "ana", "password": ana.password, "totp": fresh_totp(ana)},
    )
    assert r.status_code == 401


def test_admin_changes_roles_and_resets_totp(make_client):
    admin = make_user("root", "admin")
    ana = make_user("ana", "coder")
    a = make_client()
    sign_in(a, admin)
    assert "ana" in a.get("/admin/users").text
    a.post(f"/admin/users/{ana.user_id}/roles", data={"roles": ["coder", "biller"]})
    page = a.post(f"/admin/users/{ana.user_id}/reset-totp")
    assert "otpauth://totp/Chartdesk:ana" in page.text
    with Session(get_engine()) as s:
        user = s.get(User, ana.user_id)
        assert user is not None
        assert user.totp_secret != ana.totp_secret
    c = make_client()
    r = c.post(
        "/api/v1/session",
        json={
            "username": "ana",
            "password": ana.password,
            "totp": pyotp.TOTP(ana.totp_secret).now(),
        },
    )
    assert r.status_code == 401


def test_non_admin_cannot_reach_admin_pages_and_is_audited(client):
    sign_in(client, make_user("ana", "coder"))
    assert client.get("/admin/users").status_code == 403
    with Session(get_engine()) as s:
        denied = s.exec(select(AuditEvent).where(AuditEvent.outcome == "denied")).all()
    assert [e.actor for e in denied] == ["ana"]


def test_browser_cross_site_fetch_is_refused_same_origin_allowed(client):
    body = sign_in(client, make_user("ana", "coder"))
    r = client.delete(
        "/api/v1/session",
        headers={
            "X-CSRF-Token": body["csrf_token"],
            "Sec-Fetch-Site": "cross-site",
            "Origin": "null",
        },
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "bad_origin"
    r = client.delete(
        "/api/v1/session",
        headers={
            "X-CSRF-Token": body["csrf_token"],
            "Sec-Fetch-Site": "same-origin",
            "Origin": "null",
        },
    )
    assert r.status_code == 204


def test_csrf_refusals_on_a_plain_form_change_no_data(make_client):
    """Missing, wrong, another session's token and a cross-site origin: refused, nothing made."""
    c = make_client()
    sign_in(c, make_user("root", "admin"))
    good = c.headers.pop("X-CSRF-Token")
    other = make_client()
    other_token = sign_in(other, make_user("eve", "admin"))["csrf_token"]
    form = {"username": "mallory", "roles": ["admin"]}
    for extra, headers in [
        ({}, {}),
        ({"csrf_token": "wrong"}, {}),
        ({"csrf_token": other_token}, {}),
        ({"csrf_token": good}, {"Origin": "https://evil.example"}),
        ({"csrf_token": good}, {"Sec-Fetch-Site": "cross-site"}),
    ]:
        r = c.post("/admin/users", data={**form, **extra}, headers=headers)
        assert r.status_code == 403, (extra, headers)
    with Session(get_engine()) as s:
        assert s.exec(select(User).where(User.username == "mallory")).first() is None
    r = c.post("/admin/users", data={**form, "csrf_token": good})
    assert r.status_code == 200
    with Session(get_engine()) as s:
        assert s.exec(select(User).where(User.username == "mallory")).first() is not None


def test_sign_in_posted_from_another_site_is_refused(client):
    acct = make_user("ana", "coder")
    r = client.post(
        "/api/v1/session",
        json={"username": "ana", "password": acct.password, "totp": fresh_totp(acct)},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    r = client.post(
        "/login",
        data={"username": "ana", "password": acct.password, "totp": fresh_totp(acct)},
        headers={"Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    with Session(get_engine()) as s:
        assert s.exec(select(UserSession)).all() == []


def test_a_planted_session_cookie_is_never_adopted(make_client):
    """Session fixation: a cookie value someone else knows is replaced at sign-in."""
    attacker = make_client()
    sign_in(attacker, make_user("eve", "coder"))
    planted = attacker.cookies.get("chartdesk_session")
    victim = make_client()
    victim.cookies.set("chartdesk_session", planted, domain="testserver.local")
    sign_in(victim, make_user("ana", "coder", "biller"))
    assert victim.cookies.get("chartdesk_session") != planted
    probe = make_client()
    probe.cookies.set("chartdesk_session", planted)
    assert probe.get("/api/v1/me").status_code == 401  # the planted id leads nowhere
    made_up = make_client()
    made_up.cookies.set("chartdesk_session", "attacker-chosen-value", domain="testserver.local")
    sign_in(made_up, make_user("bo", "coder"))
    assert made_up.cookies.get("chartdesk_session") != "attacker-chosen-value"
