"""Supervisors steer the work; coders cannot, and never see each other's items."""

from __future__ import annotations

from sqlmodel import Session, select

from server.db import get_engine
from server.models import AuditEvent, Status
from tests.support.factories import make_user, sign_in
from tests.support.queue import ensure_queue, events, item, make_items


def _clients(make_client, *accounts):
    out = []
    for account in accounts:
        c = make_client()
        sign_in(c, account)
        out.append(c)
    return out


def test_a_coder_cannot_see_steer_or_touch_another_coders_item(make_client):
    make_items(1)
    cora = make_user("cora", "coder", queues=["default"])
    dev = make_user("dev", "coder", queues=["default"])
    a, b = _clients(make_client, cora, dev)
    item_id = a.post("/api/v1/work/next").json()["id"]
    for method, path, body in [
        ("get", f"/api/v1/work/{item_id}", None),
        ("post", f"/api/v1/work/{item_id}/heartbeat", None),
        ("post", f"/api/v1/work/{item_id}/release", None),
        ("post", f"/api/v1/work/{item_id}/hold", {"reason": "other"}),
        ("post", f"/api/v1/work/{item_id}/resume", None),
        ("get", f"/work/{item_id}", None),
    ]:
        r = b.request(method.upper(), path, json=body)
        assert r.status_code == 404, (path, r.status_code)
    assert b.get(f"/api/v1/work/{item_id}").json()["error"]["code"] == "not_found"
    for path, body in [
        (f"/api/v1/work/{item_id}/assign", {"username": "dev"}),
        (f"/api/v1/work/{item_id}/move", {"queue": "default"}),
        (f"/api/v1/work/{item_id}/priority", {"priority": 5}),
    ]:
        assert b.post(path, json=body).status_code == 403
    assert b.get("/api/v1/work").status_code == 403
    assert b.get("/api/v1/queues").status_code == 403
    assert b.get("/supervise").status_code == 403
    assert item(item_id).lease_owner_id == cora.user_id
    with Session(get_engine()) as s:
        denied = s.exec(
            select(AuditEvent).where(
                AuditEvent.outcome == "denied",
                AuditEvent.actor == "dev",
                AuditEvent.work_item_id == item_id,
            )
        ).all()
    assert len(denied) >= 5
    # A nonexistent item looks exactly the same as someone else's.
    missing = b.get("/api/v1/work/999999")
    assert missing.status_code == 404
    assert missing.json() == b.get(f"/api/v1/work/{item_id}").json()


def test_assign_puts_the_item_straight_into_the_coders_list(make_client):
    ensure_queue("ortho")
    item_id = make_items(1)[0]
    boss = make_user("boss", "supervisor")
    cora = make_user("cora", "coder", queues=["default"])
    make_user("olga", "coder", queues=["ortho"])
    sup, coder = _clients(make_client, boss, cora)
    r = sup.post(f"/api/v1/work/{item_id}/assign", json={"username": "olga"})
    assert r.status_code == 422
    assert "not a member" in r.json()["error"]["message"]
    assert (
        sup.post(f"/api/v1/work/{item_id}/assign", json={"username": "nobody"}).status_code == 404
    )
    r = sup.post(f"/api/v1/work/{item_id}/assign", json={"username": "cora"})
    assert r.status_code == 200
    assert r.json()["status"] == "in_progress"
    assert r.json()["lease_owner"] == "cora"
    mine = coder.get("/api/v1/work/mine").json()["items"]
    assert [i["id"] for i in mine] == [item_id]
    assert coder.post(f"/api/v1/work/{item_id}/heartbeat").status_code == 200
    # Reassign: the old holder's late request answers 409 and changes nothing.
    sup.put("/api/v1/queues/default/members", json={"usernames": ["cora", "olga"]})
    r = sup.post(f"/api/v1/work/{item_id}/assign", json={"username": "olga"})
    assert r.status_code == 200
    late = coder.post(f"/api/v1/work/{item_id}/release")
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "lease_expired"
    assert item(item_id).status == Status.in_progress
    assert [e.action for e in events(item_id)] == ["assign", "reassign"]
    with Session(get_engine()) as s:
        audited = s.exec(
            select(AuditEvent.action).where(
                AuditEvent.work_item_id == item_id, AuditEvent.actor == "boss"
            )
        ).all()
    assert list(audited) == ["assign", "assign"]


def test_move_priority_and_filters(make_client):
    ensure_queue("ortho")
    ids = make_items(5)
    boss = make_user("boss", "supervisor")
    (sup,) = _clients(make_client, boss)
    assert sup.post(f"/api/v1/work/{ids[0]}/move", json={"queue": "nope"}).status_code == 404
    r = sup.post(f"/api/v1/work/{ids[0]}/move", json={"queue": "ortho"})
    assert r.status_code == 200
    assert r.json()["queue"] == "ortho"
    r = sup.post(f"/api/v1/work/{ids[1]}/priority", json={"priority": 7})
    assert r.json()["priority"] == 7
    assert sup.post(f"/api/v1/work/{ids[1]}/priority", json={"priority": 10**6}).status_code == 422
    listed = sup.get("/api/v1/work", params={"queue": "ortho"}).json()
    assert [i["id"] for i in listed["items"]] == [ids[0]]
    # Keyset pagination walks every item once, newest first.
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = sup.get("/api/v1/work", params=params).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    assert sup.get("/api/v1/work", params={"cursor": "garbage!"}).status_code == 422
    assert sup.get("/api/v1/work", params={"status": "ready"}).json()["items"]
    assert sup.get("/api/v1/work", params={"status": "billed"}).json()["items"] == []


def test_queues_members_and_dashboard_figures(make_client):
    boss = make_user("boss", "supervisor")
    cora = make_user("cora", "coder")
    sup, coder = _clients(make_client, boss, cora)
    r = sup.post("/api/v1/queues", json={"name": "cardiology"})
    assert r.status_code == 201
    assert sup.post("/api/v1/queues", json={"name": "cardiology"}).status_code == 409
    assert sup.post("/api/v1/queues", json={"name": "Bad Name!"}).status_code == 422
    bad = sup.put("/api/v1/queues/cardiology/members", json={"usernames": ["cora", "ghost"]})
    assert bad.status_code == 422
    r = sup.put("/api/v1/queues/cardiology/members", json={"usernames": ["cora"]})
    assert r.json() == {"name": "cardiology", "members": ["cora"]}
    make_items(3, queue="cardiology")
    item_id = coder.post("/api/v1/work/next").json()["id"]
    coder.post(f"/api/v1/work/{item_id}/hold", json={"reason": "other"})
    coder.post("/api/v1/work/next")
    queues = {q["name"]: q for q in sup.get("/api/v1/queues").json()["items"]}
    card = queues["cardiology"]
    assert (card["ready"], card["in_progress"], card["on_hold"]) == (1, 1, 1)
    assert card["oldest_ready_age_seconds"] >= 0
    assert card["done_today"] == 0
    assert card["members"] == ["cora"]
    assert queues["default"]["ready"] == 0
    assert queues["default"]["oldest_ready_age_seconds"] is None
    # A supervisor resumes a held item: it goes back to its holder.
    r = sup.post(f"/api/v1/work/{item_id}/resume")
    assert r.status_code == 200
    assert r.json()["lease_owner"] == "cora"
    # Removing a member stops their pulls.
    sup.put("/api/v1/queues/cardiology/members", json={"usernames": []})
    coder.post(f"/api/v1/work/{item_id}/hold", json={"reason": "other"})
    assert coder.post("/api/v1/work/next", json={"queue": "cardiology"}).status_code == 403


def test_pages_render_for_coder_and_supervisor(make_client):
    item_id = make_items(2)[0]
    boss = make_user("boss", "supervisor")
    cora = make_user("cora", "coder", queues=["default"])
    sup, coder = _clients(make_client, boss, cora)
    page = coder.get("/work")
    assert page.status_code == 200
    assert 'data-shortcut="n"' in page.text
    dash = sup.get("/supervise")
    assert dash.status_code == 200
    assert 'hx-trigger="every 10s"' in dash.text
    assert f'id="item-{item_id}"' in dash.text
    frag = sup.get("/supervise/stats", headers={"HX-Request": "true"})
    assert frag.status_code == 200
    assert frag.text.lstrip().startswith('<section id="queue-stats"')
    form = {"csrf_token": sup.headers["X-CSRF-Token"], "username": "cora"}
    r = sup.post(f"/supervise/items/{item_id}/assign", data=form, follow_redirects=False)
    assert r.status_code == 303
    mine = coder.get("/work")
    assert f'id="item-{item_id}"' in mine.text
    # A form error shows on the dashboard, not as a crash.
    form = {"csrf_token": sup.headers["X-CSRF-Token"], "queue": "nope"}
    r = sup.post(f"/supervise/items/{item_id}/move", data=form)
    assert r.status_code == 404
    assert "No queue named nope" in r.text
