"""Real Chromium at 1366x768, mends of a browser walk: units below 1 said at the field with
the input kept; Resume clicked twice leaves the browser at My work saying why, not at the
address the form was posted to; the QA worksheet describes each code; a billed chart's
number on /qa opens its item page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import browser_sign_in
from tests.support.coding import GOOD_CODES, coder_with_item
from tests.support.factories import make_user
from tests.test_billing_api import _coded
from tests.test_billing_remittance import _billing

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


def _screen(page: Page) -> None:
    page.set_viewport_size({"width": 1366, "height": 768})


def test_units_below_one_are_refused_at_the_field_with_the_input_kept(
    page: Page, live_server, make_client
) -> None:
    held = coder_with_item(make_client)
    url = live_server.url
    _screen(page)
    browser_sign_in(page, url, held.account)
    page.goto(f"{url}/work/{held.item_id}")
    page.locator("#dx-lines input[name=dx_code]").first.fill("E11.9")
    page.click("#add-px")
    line = page.locator("#px-lines tr.px-line").first
    line.locator("input[name=px_code]").fill("99213")
    units = line.locator("input[name=px_units]")
    units.fill("-2")
    units.press("Tab")
    problem = page.locator("#codes-not-saved")
    expect(problem).to_contain_text("Procedure line 1: Units must be a whole number of 1 or more")
    expect(problem).not_to_contain_text("must be numbers")
    expect(units).to_have_attribute("aria-invalid", "true")
    expect(units).to_have_value("-2")
    units.fill("2")
    units.press("Tab")
    expect(page.locator("#codes-not-saved")).to_have_count(0)
    expect(units).not_to_have_attribute("aria-invalid", "true")


def test_resume_twice_leaves_the_browser_at_my_work_saying_why(
    page: Page, live_server, make_client
) -> None:
    held = coder_with_item(make_client)
    csrf = {"csrf_token": held.client.headers["X-CSRF-Token"]}
    r = held.client.post(
        f"/work/{held.item_id}/hold",
        data={**csrf, "reason": "missing documentation"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    url = live_server.url
    _screen(page)
    browser_sign_in(page, url, held.account)
    page.goto(f"{url}/work/{held.item_id}")
    other = page.context.new_page()  # the same chart left open in another tab
    other.set_viewport_size({"width": 1366, "height": 768})
    other.goto(f"{url}/work/{held.item_id}")
    page.click("#resume")
    expect(page).to_have_url(f"{url}/work/{held.item_id}")
    expect(page.locator("#codes-form")).to_be_visible()
    other.click("#resume")
    expect(other).to_have_url(f"{url}/work")
    expect(other.locator("#work-error")).to_contain_text(f"Chart #{held.item_id} was not resumed")
    expect(other.locator(f"#item-{held.item_id}")).to_be_visible()


def test_the_qa_worksheet_describes_each_code_and_billed_charts_link_to_their_page(
    page: Page, live_server, make_client
) -> None:
    trainee = coder_with_item(make_client, "trainee", in_training=True)
    trainee.client.put(f"/api/v1/work/{trainee.item_id}/codes", json=GOOD_CODES)
    assert trainee.client.post(f"/api/v1/work/{trainee.item_id}/submit").status_code == 200
    system = _billing(make_client)
    billed = _coded(make_client, "coder2")
    assert system.get(f"/api/v1/billing/{billed.item_id}/claim").status_code == 200
    r = system.post(f"/api/v1/billing/{billed.item_id}/billed", json={"claim_number": "P-1"})
    assert r.status_code == 200, r.text
    boss = make_user("boss", "supervisor")
    url = live_server.url
    _screen(page)
    browser_sign_in(page, url, boss)
    page.goto(f"{url}/qa/{trainee.item_id}")
    first = page.locator("#dx-lines tbody tr").first
    expect(first.locator(".code-title")).to_contain_text("Type 2 diabetes mellitus")
    expect(page.locator("#px-lines tbody tr").first.locator(".code-title")).to_have_count(1)
    page.goto(f"{url}/qa")
    page.locator(f"#billed-{billed.item_id}").get_by_role("link", name=f"#{billed.item_id}").click()
    expect(page).to_have_url(re.compile(rf"/supervise/items/{billed.item_id}$"))
