"""Real Chromium at 1366x768, two defects of a browser walk: a charge code picked on a
procedure line fills the line's code and charge at once (and the panel speaks of what is
shown); a returned item shows why it came back beside Resume, before it is taken back."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.support.billing import load_demo_cdm
from tests.support.browser import browser_sign_in
from tests.support.coding import coder_with_item, signed_in
from tests.test_billing_api import _coded

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


def test_a_picked_charge_code_fills_the_line_at_once(page: Page, live_server, make_client):
    load_demo_cdm()
    held = coder_with_item(make_client)
    url = live_server.url
    page.set_viewport_size({"width": 1366, "height": 768})
    browser_sign_in(page, url, held.account)
    page.goto(f"{url}/work/{held.item_id}")
    page.locator("#dx-lines input[name=dx_code]").first.fill("E11.9")
    page.click("#add-px")
    line = page.locator("#px-lines tr.px-line").first
    with page.expect_response(lambda r: r.url.endswith("/codes/check")):
        line.locator("input[name=px_charge_code]").fill("OV99213")
    # Shown at once, no reload: the chargemaster's code and price, and the panel's note.
    expect(line.locator("input[name=px_code]")).to_have_value("99213")
    expect(line.locator("input[name=px_charge]")).to_have_value("185.00")
    expect(page.locator("#code-problems .charge-fill")).to_contain_text("OV99213")
    expect(page.locator("#codes-ok")).to_be_visible()
    # Two units: the charge it filled follows; a charge the coder typed is kept.
    units = line.locator("input[name=px_units]")
    with page.expect_response(lambda r: r.url.endswith("/codes/check")):
        units.fill("2")
    expect(line.locator("input[name=px_charge]")).to_have_value("370.00")
    page.wait_for_load_state("networkidle")
    # The draft saved is what the line shows (the fill saved it as a change).
    saved = page.request.get(f"{url}/api/v1/work/{held.item_id}").json()
    px = saved["codes"]["procedures"][0]
    assert (px["code"], px["charge_code"], px["charge"]) == ("99213", "OV99213", 370.0)


def test_a_returned_item_shows_why_beside_resume(page: Page, live_server, make_client):
    held = _coded(make_client)
    biller = signed_in(make_client, "biller1", "biller")
    r = biller.post(f"/api/v1/billing/{held.item_id}/return", json={"reason": "add modifier 59"})
    assert r.status_code == 200, r.text
    url = live_server.url
    page.set_viewport_size({"width": 1366, "height": 768})
    browser_sign_in(page, url, held.account)
    page.goto(f"{url}/work/{held.item_id}")
    reason = page.locator("#returned-reason")
    expect(reason).to_contain_text("add modifier 59")
    resume = page.locator("#resume")
    expect(resume).to_be_in_viewport()
    expect(reason).to_be_in_viewport()
    expect(page.locator("#codes-form")).to_have_count(0)
    resume.click()
    expect(page.locator("#codes-form")).to_be_visible()
