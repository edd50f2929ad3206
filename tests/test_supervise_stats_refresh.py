"""The dashboard's 10-second refresh: "no change" (204, htmx keeps what is shown) while the
figures it shows are current, the new figures as soon as anything moves."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

from server.queue.supervision import stats_version
from tests.support.coding import coder_with_item
from tests.support.factories import make_user, sign_in


def _poll_url(page: str) -> str:
    found = re.search(r'id="queue-stats"[^>]*hx-get="([^"]+)"', page)
    assert found, page
    return html.unescape(found.group(1))


def _ready(page: str) -> str:
    found = re.search(r'<tr id="queue-default">.*?data-figure="ready">(\d+)<', page, re.S)
    assert found, page
    return found.group(1)


def test_refresh_is_no_change_until_a_coder_moves_something(make_client):
    held = coder_with_item(make_client)  # the coder holds the item: 0 ready
    sup = make_client()
    sign_in(sup, make_user("sue", "supervisor"))
    dashboard = sup.get("/supervise")
    assert dashboard.status_code == 200
    url = _poll_url(dashboard.text)
    assert "?v=" in url
    assert _ready(dashboard.text) == "0"

    # Nothing changed: no figures sent, htmx leaves the section as it is.
    again = sup.get(url)
    if again.status_code == 200:  # the minute turned between the two requests
        url = _poll_url(again.text)
        again = sup.get(url)
    assert again.status_code == 204
    assert again.text == ""

    # The coder lets the item go: the same poll now brings the new figures and a new version.
    assert held.client.post(f"/api/v1/work/{held.item_id}/release").status_code == 200
    changed = sup.get(url)
    assert changed.status_code == 200
    assert _ready(changed.text) == "1"
    assert _poll_url(changed.text) != url
    # Without a version (or with a stale one) the figures always come.
    assert sup.get("/supervise/stats").status_code == 200
    assert sup.get("/supervise/stats?v=nonsense").status_code == 200


def test_version_moves_with_the_minute_for_the_ages_shown(make_client):
    from sqlmodel import Session

    from server.db import get_engine

    now = datetime(2026, 11, 27, 10, 0, 5, tzinfo=UTC)
    with Session(get_engine()) as s:
        assert stats_version(s, now=now) == stats_version(s, now=now + timedelta(seconds=50))
        assert stats_version(s, now=now) != stats_version(s, now=now + timedelta(minutes=1))


def test_coders_cannot_poll_the_figures(make_client):
    held = coder_with_item(make_client)
    assert held.client.get("/supervise/stats?v=x").status_code == 403
