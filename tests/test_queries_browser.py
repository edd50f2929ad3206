"""Real Chromium: a coder queries the provider from the chart; the provider answers on their
page, signing with a code; the coder resumes the chart and reads the answer."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import browser_sign_in
from tests.support.factories import fresh_totp, make_encounter, make_user

pytestmark = pytest.mark.browser

NPI = "1245319599"


def test_query_answer_and_read_back(page: Page, browser, live_server, backend):
    item = make_encounter(queue="default", providers=[{"npi": NPI, "name": "Dr. Ada Whitlock"}])
    coder = make_user("ana", "coder", queues=["default"])
    doctor = make_user("drwhit", "provider", npi=NPI)
    url = live_server.url

    browser_sign_in(page, url, coder)
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(f"{url}/work/{item}")
    page.click("#query-compose summary")
    page.fill("#query-question", "Please document acute bronchitis.")
    page.fill(
        "#query-options",
        "Acute bronchitis\nCommunity-acquired pneumonia\nother\nclinically undetermined",
    )
    page.locator("input.indicator-quote").first.fill("productive cough and low-grade fever")
    page.click("#query-send")
    # Refused at the question, with what was typed kept.
    expect(page.locator("#query-error")).to_contain_text("leading phrase")
    expect(page.locator("#query-options")).to_have_value(
        "Acute bronchitis\nCommunity-acquired pneumonia\nother\nclinically undetermined"
    )
    expect(page.locator("input.indicator-quote").first).to_have_value(
        "productive cough and low-grade fever"
    )
    page.fill("#query-question", "Based on the indicators, which condition is being treated?")
    page.click("#query-send")
    expect(page).to_have_url(f"{url}/work?queried=1")
    expect(page.locator(f"#item-{item}")).to_have_attribute("data-status", "on_hold")

    context = browser.new_context()
    try:
        dp = context.new_page()
        browser_sign_in(dp, url, doctor)
        dp.click("#nav-queries")
        dp.locator("#queries a").first.click()
        expect(dp.locator("#query-indicators")).to_contain_text(
            "productive cough and low-grade fever"
        )
        expect(dp.locator("body")).not_to_contain_text("scattered rhonchi")  # no chart
        dp.check("input[name=option][value='Acute bronchitis']")
        dp.fill("#answer-totp", "12345")  # not even six digits: never a valid code
        dp.click("#answer-submit")
        expect(dp.locator("#answer-error")).to_contain_text("authenticator")
        expect(dp.locator("input[name=option][value='Acute bronchitis']")).to_be_checked()
        dp.fill("#answer-totp", fresh_totp(doctor))
        dp.click("#answer-submit")
        expect(dp.locator("#query-message")).to_contain_text("Answer signed")
        expect(dp.locator("#no-queries")).to_be_visible()
    finally:
        context.close()

    page.goto(f"{url}/work")
    expect(page.locator(f"#item-{item}")).to_have_attribute("data-status", "returned")
    page.locator(f"#item-{item} button").click()
    page.goto(f"{url}/work/{item}")
    expect(page.locator("#item-queries .query-answer")).to_contain_text("Acute bronchitis")
    expect(page.locator("#item-queries")).to_contain_text("drwhit")
