"""Real Chromium: a coder codes a chart with autocomplete and submits; a biller exports the
claim and marks it billed."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from server.coding import codesets
from tests.support.browser import browser_sign_in
from tests.support.coding import pyx12_accepts
from tests.support.factories import make_encounter, make_user

# PostgreSQL only: the API tests cover both backends; a browser adds the page, not the DB.
pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


def test_code_with_autocomplete_submit_then_bill(page: Page, browser, live_server, backend):
    codesets.icd10cm()  # the server (in this process) builds it at startup outside tests
    item = make_encounter(queue="default")
    coder = make_user("ana", "coder", queues=["default"])
    biller = make_user("bill", "biller")
    url = live_server.url

    browser_sign_in(page, url, coder)
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(f"{url}/work/{item}")
    card = page.locator("#documents article.watermarked").first  # each card is watermarked
    expect(card).to_have_attribute("data-watermark", re.compile("^ana · "))
    expect(page.locator("#codes-form")).to_be_visible()
    # htmx swaps the panel in, then binds its hx-triggers in the settle step (a timer later):
    # on a busy machine "E11" could be typed before the as-you-type check listens. Wait for
    # the network to go quiet, by when the swap has settled.
    page.wait_for_load_state("networkidle")
    # A category header first: the check says why it is refused.
    dx = page.locator("#dx-lines input[name=dx_code]").first
    dx.fill("E11")
    expect(page.locator("#code-problems")).to_contain_text("is a category header")
    # Autocomplete by words fills the datalist with real codes.
    dx.fill("")
    dx.type("type 2 diabetes without", delay=20)
    expect(page.locator("#dx-options option[value='E11.9']")).to_have_count(1)
    # Picked from the suggestions by keyboard: the first is the best match for the words.
    expect(page.locator("#code-suggestions [role=option]").first).to_be_visible()
    expect(dx).to_have_attribute("aria-expanded", "true")
    dx.press("ArrowDown")
    expect(page.locator("#code-suggestions [aria-selected=true]")).to_have_count(1)
    dx.press("Escape")
    expect(page.locator("#code-suggestions")).to_be_hidden()
    dx.fill("E11.9")
    # The picked code's description shows beside it.
    expect(page.locator("#dx-lines .code-title").first).to_contain_text("Type 2 diabetes")
    page.keyboard.press("Alt+p")  # add a procedure line
    page.locator("#px-lines input[name=px_code]").first.fill("99213")
    page.locator("#px-lines input[name=px_charge]").first.fill("125")
    expect(page.locator("#codes-ok")).to_be_visible()
    page.keyboard.press("Control+Enter")  # submit
    expect(page).to_have_url(re.compile(rf"/work\?submitted={item}&to=ready_for_billing"))

    context = browser.new_context(accept_downloads=True)
    try:
        bp = context.new_page()
        browser_sign_in(bp, url, biller)
        bp.goto(f"{url}/billing")
        bp.click(f"#ready-{item} a")
        expect(bp.locator("#claim-preview")).to_contain_text("SV1*HC:99213*125*UN*1***1~")
        with bp.expect_download() as dl:
            bp.click("#export-x12")
        ok, log = pyx12_accepts(open(dl.value.path(), encoding="ascii").read())
        assert ok, log
        bp.fill("#claim-number", "PAYER-0001")
        bp.click("#mark-billed")
        expect(bp.locator("#billing-message")).to_have_text("Marked billed.")
        expect(bp.locator(f"#ready-{item}")).to_have_count(0)
    finally:
        context.close()
