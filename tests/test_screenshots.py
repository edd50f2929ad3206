"""README's screenshots, taken by the browser at 1366x768 on the real pages.

Run with CHARTDESK_SCREENSHOTS=docs (`make screenshots`) to write them; in a normal run the
pages are still driven and checked, and nothing is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from server.coding import codesets
from tests.support.browser import browser_sign_in
from tests.support.coding import GOOD_CODES, coder_with_item
from tests.support.factories import make_encounter, make_user

pytestmark = pytest.mark.browser

OUT = os.environ.get("CHARTDESK_SCREENSHOTS")


def _shot(page: Page, name: str) -> None:
    if OUT:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(OUT) / f"{name}.png"))


def test_screenshots_of_the_main_screens(browser: Browser, live_server, make_client, backend):
    codesets.icd10cm()
    held = coder_with_item(make_client, "ana")  # first: Next leases the first item there is
    for _ in range(3):
        make_encounter()
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    url = live_server.url
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        browser_sign_in(page, url, held.account)
        page.goto(f"{url}/work/{held.item_id}")
        expect(page.locator("#codes-ok")).to_be_visible()
        _shot(page, "workbench")
        page.context.clear_cookies()
        browser_sign_in(page, url, make_user("boss", "supervisor", queues=["default"]))
        page.goto(f"{url}/supervise")
        expect(page.locator("#queue-stats")).to_be_visible()
        _shot(page, "supervisor")
        page.context.clear_cookies()
        browser_sign_in(page, url, make_user("cora", "compliance"))
        page.goto(f"{url}/compliance")
        page.click("#search")
        expect(page.locator("#results table#events")).to_be_visible()
        _shot(page, "compliance")
    finally:
        context.close()
