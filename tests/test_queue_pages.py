"""The coder's pages without a browser: forms, redirects and htmx fragments."""

from __future__ import annotations

from server.models import Status
from tests.support.factories import make_user, sign_in
from tests.support.queue import expire, item, make_items

HTMX = {"HX-Request": "true"}


def _coder(make_client):
    account = make_user("cora", "coder", queues=["default"])
    client = make_client()
    sign_in(client, account)
    return account, client


def test_next_with_nothing_waiting_says_so(make_client):
    _, client = _coder(make_client)
    r = client.post("/work/next", data={"csrf_token": client.headers["X-CSRF-Token"]})
    assert r.status_code == 200
    assert "Nothing is waiting" in r.text


def test_next_opens_the_item_and_the_forms_work(make_client):
    make_items(1)
    account, client = _coder(make_client)
    csrf = {"csrf_token": client.headers["X-CSRF-Token"]}
    r = client.post("/work/next", data=csrf, follow_redirects=False)
    assert r.status_code == 303
    item_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert item(item_id).lease_owner_id == account.user_id
    # The heartbeat fragment replaces the lease box and keeps polling.
    beat = client.post(f"/work/{item_id}/heartbeat", headers=HTMX)
    assert beat.status_code == 200
    assert beat.text.lstrip().startswith('<span id="lease"')
    assert 'hx-trigger="every 60s"' in beat.text
    # Hold from the form: back to My work, where it shows as held with a Resume button.
    r = client.post(
        f"/work/{item_id}/hold",
        data={**csrf, "reason": "missing documentation", "note": "x"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get("/work")
    assert f'id="item-{item_id}" data-status="on_hold"' in page.text
    assert "missing documentation" in page.text
    held_page = client.get(f"/work/{item_id}")
    assert held_page.status_code == 200
    assert 'id="resume"' in held_page.text
    r = client.post(f"/work/{item_id}/resume", data=csrf, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/work/{item_id}"
    assert item(item_id).status == Status.in_progress
    # Resume again (a second click, an old tab): My work says why, at /work, not at the
    # address the form was posted to, and the chart is there to open.
    again = client.post(f"/work/{item_id}/resume", data=csrf, follow_redirects=False)
    assert again.status_code == 409
    assert 'id="work-error" role="alert"' in again.text
    assert f"Chart #{item_id} was not resumed: it is already in progress with you" in again.text
    assert 'data-page-url="/work"' in again.text
    assert f'id="item-{item_id}" data-status="in_progress"' in again.text
    assert item(item_id).status == Status.in_progress
    r = client.post(f"/work/{item_id}/release", data=csrf, follow_redirects=False)
    assert r.status_code == 303
    assert item(item_id).status == Status.ready
    # Released, it is nobody's: a Resume from the old page says why, not "already yours".
    late = client.post(f"/work/{item_id}/resume", data=csrf, follow_redirects=False)
    assert late.status_code in (403, 404, 409)
    assert f"Chart #{item_id} was not resumed" in late.text
    assert "already in progress with you" not in late.text


def test_a_late_heartbeat_shows_a_message_instead_of_the_lease(make_client):
    make_items(1)
    _, client = _coder(make_client)
    item_id = client.post("/api/v1/work/next").json()["id"]
    expire(item_id)
    beat = client.post(f"/work/{item_id}/heartbeat", headers=HTMX)
    assert beat.status_code == 409
    assert beat.headers["HX-Retarget"] == "#flash"
    assert "expired" in beat.text


def test_an_old_link_to_a_submitted_chart_says_it_was_submitted_not_lost(make_client):
    """The coder opens a chart they already submitted (a bookmark, the back button): the page
    says where it went, not that unsaved changes were lost with an ended lease."""
    from tests.support.coding import GOOD_CODES, coder_with_item

    held = coder_with_item(make_client)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    page = held.client.get(f"/work/{held.item_id}")
    assert page.status_code == 409
    assert f"You submitted chart #{held.item_id}; it is ready for billing now" in page.text
    assert "are lost" not in page.text
    assert '<span class="flash-actions"><a href="/work">Back to My work</a></span>' in page.text
