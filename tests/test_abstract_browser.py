"""Real Chromium at 1366x768: the inpatient abstract stays folded so the code field is in
view; opened, a refused value shows at its field with what was typed, and a saved
discharge status moves the working DRG (AMI: 282 alive, 285 expired)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from server.coding import codesets
from tests.support.factories import Account, fresh_totp, make_encounter, make_user

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


def _sign_in(page: Page, url: str, account: Account) -> None:
    page.goto(f"{url}/login")
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    page.fill("#totp", fresh_totp(account))
    page.click("#sign-in")
    expect(page.locator("#home-title")).to_be_visible()


def test_the_abstract_folded_edited_refused_at_the_field_and_saved(
    page: Page, live_server, backend
) -> None:
    codesets.icd10cm()
    item = make_encounter(
        queue="default",
        **{
            "class": "inpatient",
            "start": datetime(2026, 1, 10, 8, 0, tzinfo=UTC),
            "end": datetime(2026, 1, 14, 11, 0, tzinfo=UTC),
        },
    )
    coder = make_user("ana", "coder", queues=["default"])
    url = live_server.url
    page.set_viewport_size({"width": 1366, "height": 768})
    _sign_in(page, url, coder)
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(f"{url}/work/{item}")
    # Folded: one line says what is missing, and the code field is on screen.
    expect(page.locator("#abstract-summary")).to_contain_text("discharge missing")
    code = page.locator("#dx-lines input[name=dx_code]").first
    box = code.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= 768
    page.wait_for_load_state("networkidle")
    code.fill("I21.4")
    page.locator("#dx-lines select[name=dx_poa]").first.select_option("Y")
    expect(page.locator("#working-drg")).to_have_attribute("data-drg", "282", timeout=15000)

    page.click("#abstract summary")
    page.select_option("#abstract-discharge_status", "20")
    page.fill("#abstract-operating_npi", "1245319598")  # check digit wrong
    page.fill("#abstract-admission_hour", "7")
    page.click("#save-abstract")
    npi = page.locator("#abstract-operating_npi")
    expect(npi).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#err-operating_npi")).to_contain_text("check digit")
    expect(npi).to_have_value("1245319598")
    expect(page.locator("#abstract-admission_hour")).to_have_value("7")
    expect(page.locator("#abstract-discharge_status")).to_have_value("20")
    expect(page.locator("#abstract-error")).to_be_visible()

    npi.fill("1245319599")
    page.click("#save-abstract")
    expect(page.locator("#abstract-saved")).to_be_visible()
    expect(page.locator("#abstract-operating_npi")).not_to_have_attribute("aria-invalid", "true")
    # The saved discharge status (expired) regroups the stay.
    expect(page.locator("#working-drg")).to_have_attribute("data-drg", "285", timeout=15000)
