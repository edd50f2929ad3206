"""Real Chromium at 1366x768: the inpatient abstract stays folded so the code field is in
view; opened, a refused value shows at its field with what was typed, and a saved
discharge status moves the working DRG (AMI: 282 alive, 285 expired)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from server.coding import codesets
from tests.support.browser import browser_sign_in
from tests.support.factories import make_encounter, make_user

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


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
    browser_sign_in(page, url, coder)
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
    # The as-you-type check (500 ms after typing) answers before the abstract is saved: it
    # groups without the abstract (it opens nothing), and a late answer would replace the
    # panel the saved abstract's re-check is about to fill.
    with page.expect_response(lambda r: r.url.endswith("/codes/check")):
        code.fill("I21.4")
    # Picking the POA fires input (a check) and change (the draft saved): both answered.
    with page.expect_response(lambda r: r.url.endswith("/codes/check")):
        with page.expect_response(lambda r: r.url.endswith("/codes")):
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


AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


def test_the_open_and_refused_abstract_passes_axe(browser: Browser, live_server, backend) -> None:
    codesets.icd10cm()
    item = make_encounter(queue="default", **{"class": "inpatient"})
    coder = make_user("ana", "coder", queues=["default"])
    context = browser.new_context(bypass_csp=True, viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        browser_sign_in(page, live_server.url, coder)
        page.goto(f"{live_server.url}/work")
        page.keyboard.press("n")
        expect(page).to_have_url(f"{live_server.url}/work/{item}")
        page.click("#abstract summary")
        page.fill("#abstract-birth_weight_grams", "12")
        page.click("#save-abstract")
        expect(page.locator("#err-birth_weight_grams")).to_be_visible()
        page.add_script_tag(path=str(AXE))
        found = page.evaluate(
            "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)"
        )
        bad = [(v["id"], v["impact"]) for v in found if v["impact"] in ("serious", "critical")]
        assert bad == []
        # The refused save's 422 is expected; nothing else went wrong on the page.
        assert [e for e in errors if "422" not in e] == []
    finally:
        context.close()
