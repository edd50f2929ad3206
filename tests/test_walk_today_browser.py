"""Real Chromium at 1366x768, from the walk of the pages merged on 27 Nov: a form that failed
far down a page comes back with its message in view and the cursor in the field, and the
workbench's procedure line (with its charge code column) fits inside the codes pane."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import browser_sign_in
from tests.support.coding import coder_with_item
from tests.support.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]

VIEWPORT = {"width": 1366, "height": 768}


def test_sampling_rule_error_is_in_view_with_the_input_kept(browser, live_server):
    boss = make_user("boss", "supervisor", queues=["default"])
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        browser_sign_in(page, live_server.url, boss)
        page.goto(f"{live_server.url}/qa/queues/default/sampling")
        page.select_option("#f-kind", index=0)
        page.fill("#f-value", "@@bad")
        page.locator("#f-value").press("Enter")  # Enter submits
        error = page.locator("#form-error")
        expect(error).to_contain_text("The rule was not added")
        expect(error).to_be_in_viewport()  # the form is below the fold; the page opened at top
        expect(page.locator("#f-value")).to_be_focused()
        expect(page.locator("#f-value")).to_have_value("@@bad")
    finally:
        context.close()


def test_procedure_line_fits_in_the_codes_pane(browser, live_server, make_client):
    held = coder_with_item(make_client, "ana")
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        browser_sign_in(page, live_server.url, held.account)
        page.goto(f"{live_server.url}/work/{held.item_id}")
        page.click("#add-px")
        fits = page.evaluate(
            """() => {
              const pane = document.querySelector('#work-pane');
              const btn = document.querySelector('#px-lines tbody tr:last-child button');
              return {over: pane.scrollWidth - pane.clientWidth,
                      right: btn.getBoundingClientRect().right,
                      edge: pane.getBoundingClientRect().right};
            }"""
        )
        assert fits["over"] <= 0, fits
        assert fits["right"] <= fits["edge"], fits
    finally:
        context.close()
