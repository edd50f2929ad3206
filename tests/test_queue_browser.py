"""Real Chromium: a coder presses Next, reads the chart, releases it; a supervisor assigns."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import browser_sign_in
from tests.support.factories import make_encounter, make_user

# PostgreSQL only: the API tests cover both backends; a browser adds the page, not the DB.
pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


def test_next_chart_release_and_assignment(page: Page, browser: Browser, live_server, backend):
    first = make_encounter(queue="default", priority=5)
    second = make_encounter(queue="default", priority=0)
    coder = make_user("ana", "coder", queues=["default"])
    boss = make_user("boss", "supervisor")
    url = live_server.url

    browser_sign_in(page, url, coder)
    page.goto(f"{url}/work")
    expect(page.locator("#my-items")).to_contain_text("Nothing leased or held")
    page.keyboard.press("n")  # the Next shortcut
    expect(page).to_have_url(f"{url}/work/{first}")
    expect(page.locator("#chart")).to_be_visible()
    expect(page.locator("#patient-name")).not_to_be_empty()
    expect(page.locator("#chart .document").first).not_to_be_empty()
    expect(page.locator("#lease strong")).to_have_text(re.compile(r"^\d+:\d\d$"))
    page.click("#release")
    expect(page).to_have_url(f"{url}/work")
    expect(page.locator("#my-items")).to_contain_text("Nothing leased or held")

    # The supervisor assigns the other chart to ana from the dashboard.
    context = browser.new_context()
    try:
        sup = context.new_page()
        browser_sign_in(sup, url, boss)
        sup.goto(f"{url}/supervise")
        row = sup.locator(f"#item-{second}")
        row.locator("select[name=username]").select_option("ana")
        row.get_by_role("button", name="Assign").click()
        expect(sup.locator("#supervise-message")).to_have_text("Item assigned.")
    finally:
        context.close()

    page.goto(f"{url}/work")
    expect(page.locator(f"#item-{second}")).to_be_visible()
    expect(page.locator(f"#item-{second}")).to_have_attribute("data-status", "in_progress")
