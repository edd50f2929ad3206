"""Hostile input that used to answer 500: NUL bytes in query parameters and form fields.

PostgreSQL refuses NUL in text, so a NUL that reached a query or an audit row became a 500.
One guard refuses it for every query parameter, path parameter and form field: 422 naming
the field, the value never echoed.
"""

from __future__ import annotations

import pytest

from tests.support.factories import make_user, sign_in


def _named(r, where: str, name: str) -> None:
    assert r.status_code == 422, r.text[:300]
    assert "\x00" not in r.text
    body = r.json()
    assert body["error"]["code"] == "validation_failed"
    assert body["error"]["details"] == [
        {"loc": [where, name], "msg": "must not contain a NUL character"}
    ]
    assert name in body["error"]["message"]


@pytest.mark.parametrize("param", ["actor", "action", "work_item"])
def test_nul_in_an_audit_search_parameter_is_422_naming_it(make_client, backend, param):
    officer = make_client()
    sign_in(officer, make_user("officer", "compliance"))
    _named(officer.get("/api/v1/audit/events", params={param: "ann\x00x"}), "query", param)


@pytest.mark.parametrize("param", ["queue", "coder"])
def test_nul_in_a_work_list_filter_is_422_naming_it(make_client, backend, param):
    boss = make_client()
    sign_in(boss, make_user("boss", "supervisor"))
    _named(boss.get("/api/v1/work", params={param: "default\x00"}), "query", param)


def test_nul_in_the_sign_in_form_is_422_naming_the_field(client, backend):
    make_user("ann", "coder")
    r = client.post(
        "/login",
        data={"username": "ann\x00", "password": "x", "totp": "000000"},
        headers={"Accept": "application/json"},
    )
    _named(r, "form", "username")
    page = client.post("/login", data={"username": "ann", "password": "x\x00", "totp": "1"})
    assert page.status_code == 422
    assert "text/html" in page.headers["content-type"]
    assert "password" in page.text


def test_nul_in_a_json_string_is_422_naming_its_place(make_client, backend):
    anyone = make_client()
    r = anyone.post("/api/v1/session", json={"username": "a\x00b", "password": "x", "totp": "1"})
    _named(r, "body", "username")
    boss = make_client()
    sign_in(boss, make_user("boss", "supervisor"))
    r = boss.put("/api/v1/queues/default/members", json={"usernames": ["boss", "a\x00"]})
    assert r.status_code == 422
    assert r.json()["error"]["details"] == [
        {"loc": ["body", "usernames", "1"], "msg": "must not contain a NUL character"}
    ]
    # An escaped backslash followed by "u0000" is text, not a NUL: it passes the guard.
    r = boss.put(
        "/api/v1/queues/default/members",
        content=b'{"usernames": ["boss\\\\u0000"]}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["usernames"]
