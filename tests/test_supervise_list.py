"""The supervisor's item list: sorted, filtered, in pages of 50 with a total; an item's history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from server.db import get_engine
from server.models import Status, WorkItem
from tests.support.factories import make_user, sign_in
from tests.test_reports import _item


def _ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="item-(\d+)"', html)]


def _set(item_id: int, **values: object) -> None:
    with Session(get_engine()) as s:
        item = s.get(WorkItem, item_id)
        assert item is not None
        for key, value in values.items():
            setattr(item, key, value)
        s.add(item)
        s.commit()


def _supervisor(make_client):
    client = make_client()
    sign_in(client, make_user("sue", "supervisor"))
    return client


def test_sorting_by_due_priority_age_and_status(make_client):
    now = datetime.now(UTC)
    old = _item(end=(now - timedelta(days=40)).isoformat()[:16], klass="inpatient")
    mid = _item(end=(now - timedelta(days=10)).isoformat()[:16], payer="medicare")
    new = _item(end=(now - timedelta(days=1)).isoformat()[:16])
    undated = _item()
    _set(old, priority=1, due_at=now + timedelta(days=3))
    _set(mid, priority=5, due_at=now + timedelta(days=1), status=Status.on_hold)
    _set(new, priority=3, due_at=None)
    _set(undated, priority=0, due_at=now + timedelta(days=2), status=Status.in_progress)
    sup = _supervisor(make_client)

    def order(query: str) -> list[int]:
        r = sup.get(f"/supervise?{query}")
        assert r.status_code == 200, r.text
        return _ids(r.text)

    # Default: due date, earliest first, items without one last.
    assert order("") == [mid, undated, old, new]
    assert order("sort=due&dir=desc") == [old, undated, mid, new]
    assert order("sort=priority&dir=desc") == [mid, new, old, undated]
    assert order("sort=priority&dir=asc") == [undated, old, new, mid]
    # Age since discharge: oldest discharge first when descending; undated items last.
    assert order("sort=age&dir=desc") == [old, mid, new, undated]
    assert order("sort=age&dir=asc") == [new, mid, old, undated]
    assert order("sort=status") == [undated, mid, old, new]  # in_progress, on_hold, ready
    assert order("sort=id&dir=desc") == [undated, new, mid, old]
    page = sup.get("/supervise?sort=age&dir=desc").text
    assert 'aria-sort="descending"' in page
    assert "40d" in page
    # Filters on every column the list shows, the sort kept.
    assert order("class=inpatient") == [old]
    assert order("payer_class=medicare&sort=age&dir=desc") == [mid]
    assert order("status=on_hold") == [mid]
    assert order("queue=default&status=ready&sort=priority&dir=desc") == [new, old]
    bad = sup.get("/supervise?sort=patient")
    assert bad.status_code == 422
    assert "Check the list&#39;s filters." in bad.text or "Check the list's filters." in bad.text


def test_pages_of_fifty_with_a_total(make_client):
    ids = [_item() for _ in range(53)]
    sup = _supervisor(make_client)
    first = sup.get("/supervise?sort=id").text
    assert _ids(first) == ids[:50]
    assert 'data-figure="total">53<' in first
    assert "Items 1–50 of" in first
    assert "Page 1 of 2" in first
    second = sup.get("/supervise?sort=id&page=2").text
    assert _ids(second) == ids[50:]
    assert "Items 51–53 of" in second
    assert 'id="prev"' in second
    # Past the last page: the last page.
    assert _ids(sup.get("/supervise?sort=id&page=9").text) == ids[50:]
    assert _ids(sup.get("/supervise?sort=id&class=inpatient").text) == []


def test_item_history_shows_every_event_with_who_and_when(make_client):
    now = datetime.now(UTC)
    item_id = _item(end=(now - timedelta(days=3)).isoformat()[:16], klass="inpatient")
    coder = make_user("cora", "coder", queues=["default"])
    c = make_client()
    sign_in(c, coder)
    sup = _supervisor(make_client)
    assert c.post("/api/v1/work/next", json={}).json()["id"] == item_id
    c.post(f"/api/v1/work/{item_id}/hold", json={"reason": "other", "note": "Ms Smith"})
    sup.post(f"/api/v1/work/{item_id}/resume")
    sup.post(f"/api/v1/work/{item_id}/priority", json={"priority": 7})
    page = sup.get(f"/supervise/items/{item_id}")
    assert page.status_code == 200
    actions = re.findall(r'<tr data-action="([a-z-]+)">', page.text)
    assert actions == ["claim", "hold", "resume", "priority"]
    assert "cora" in page.text
    assert "sue" in page.text
    assert "Ms Smith" not in page.text  # the hold note is never stored
    assert "inpatient" in page.text
    assert sup.get("/supervise/items/999999").status_code == 404
    assert c.get(f"/supervise/items/{item_id}").status_code == 403
    # The dashboard links each item to it.
    assert f'href="/supervise/items/{item_id}"' in sup.get("/supervise").text


def test_bulk_assign_move_and_priority_change_all_or_none(make_client):
    from tests.support.queue import ensure_queue, events, item

    ids = [_item() for _ in range(3)]
    ensure_queue("cardiology")
    make_user("cora", "coder", queues=["default"])
    make_user("dev", "coder", queues=["cardiology"])
    sup = _supervisor(make_client)
    csrf = sup.headers["X-CSRF-Token"]
    page = sup.get("/supervise").text
    assert f'name="ids" value="{ids[0]}" form="bulk"' in page

    def bulk(**fields):
        data = {"csrf_token": csrf, **fields}
        return sup.post("/supervise/items/bulk", data=data, follow_redirects=False)

    r = bulk(action="priority", ids=[ids[0], ids[1]], priority="9")
    assert r.status_code == 303
    assert r.headers["location"] == "/supervise?done=bulk-priority"
    assert [item(i).priority for i in ids] == [9, 9, 0]
    assert [e.action for e in events(ids[0])] == ["priority"]

    r = bulk(action="assign", ids=ids[:2], username="cora")
    assert r.status_code == 303
    assert {item(i).lease_owner_id for i in ids[:2]} == {item(ids[0]).lease_owner_id}
    assert item(ids[0]).status == Status.in_progress

    # The last item is in a queue cora is not a member of: the change to the first one is
    # rolled back too, and the page says which item failed.
    sup.post(f"/supervise/items/{ids[2]}/move", data={"csrf_token": csrf, "queue": "cardiology"})
    before = len(events(ids[1]))
    failed = bulk(action="assign", ids=[ids[2], ids[1]], username="cora")
    assert failed.status_code == 422
    assert f"Item {ids[2]}:" in failed.text
    assert "Nothing was changed." in failed.text
    assert len(events(ids[1])) == before
    assert item(ids[2]).lease_owner_id is None
    assert item(ids[2]).status == Status.ready

    r = bulk(action="move", ids=ids, queue="cardiology")
    assert r.status_code == 303
    cardiology = ensure_queue("cardiology")
    assert {item(i).queue_id for i in ids} == {cardiology}

    assert bulk(action="move", queue="cardiology").status_code == 422  # nothing selected
    assert bulk(action="priority", ids=[ids[0]], priority="high").status_code == 422
    assert bulk(action="delete", ids=[ids[0]]).status_code == 422


def test_a_failed_bulk_action_keeps_the_lists_filters_and_what_was_chosen(make_client):
    ids = [_item(klass="inpatient") for _ in range(2)]
    sup = _supervisor(make_client)
    csrf = sup.headers["X-CSRF-Token"]
    listed = sup.get("/supervise?class=inpatient&sort=priority&dir=desc").text
    assert 'name="list" value="class=inpatient&amp;sort=priority&amp;dir=desc"' in listed
    failed = sup.post(
        "/supervise/items/bulk",
        data={
            "csrf_token": csrf,
            "list": "class=inpatient&sort=priority&dir=desc",
            "action": "priority",
            "ids": [str(ids[1])],
            "priority": "high",
        },
        follow_redirects=False,
    )
    assert failed.status_code == 422
    page = failed.text
    assert 'id="supervise-error"' in page
    # The page says where it is: the list with its filters (the browser shows that address).
    assert 'data-page-url="/supervise?class=inpatient&amp;sort=priority&amp;dir=desc"' in page
    assert '<th scope="col" aria-sort="descending">' in page
    assert '<option value="priority" selected>Set priority</option>' in page
    assert f'value="{ids[1]}" form="bulk" aria-label="Select item {ids[1]}" checked' in page
    assert f'value="{ids[0]}" form="bulk" aria-label="Select item {ids[0]}">' in page
    done = sup.post(
        "/supervise/items/bulk",
        data={
            "csrf_token": csrf,
            "list": "class=inpatient&sort=priority&dir=desc",
            "action": "priority",
            "ids": [str(ids[1])],
            "priority": "4",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == (
        "/supervise?class=inpatient&sort=priority&dir=desc&done=bulk-priority"
    )
