"""Real Chromium: a supervisor sorts the item list and changes several items at once."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import browser_sign_in
from tests.support.factories import make_user
from tests.support.queue import item
from tests.test_supervise_list import _item, _set

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


def test_sort_by_priority_then_bulk_move_by_keyboard(page: Page, live_server, backend) -> None:
    low, high, mid = _item(), _item(), _item()
    _set(low, priority=1)
    _set(high, priority=9)
    _set(mid, priority=5)
    _item(queue="cardiology")
    sup = make_user("sue", "supervisor")
    url = live_server.url
    browser_sign_in(page, url, sup)
    page.goto(f"{url}/supervise")

    page.click('#items th a[data-sort="priority"]')  # ascending
    page.click('#items th a[data-sort="priority"]')  # descending
    expect(page).to_have_url(f"{url}/supervise?sort=priority&dir=desc")
    expect(page.locator('#items th[aria-sort="descending"]')).to_contain_text("Priority")
    rows = page.locator("#items tbody tr")
    assert rows.nth(0).get_attribute("id") == f"item-{high}"
    assert rows.nth(1).get_attribute("id") == f"item-{mid}"

    # Tick two items with the keyboard, then move them together.
    for item_id in (high, low):
        page.focus(f'input[name=ids][value="{item_id}"]')
        page.keyboard.press("Space")
    page.select_option("#bulk select[name=action]", "move")
    page.select_option("#bulk select[name=queue]", "cardiology")
    page.focus("#bulk-apply")
    page.keyboard.press("Enter")
    expect(page.locator("#supervise-message")).to_have_text("Selected items moved.")
    assert item(high).queue_id == item(low).queue_id != item(mid).queue_id
