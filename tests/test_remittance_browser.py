"""Real Chromium: a biller uploads a payer's 835; the coder sees the denial with its coded
reasons, corrects and resubmits; the claim goes out as a replacement (CLM05-3 7, REF*F8)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from server.coding import codesets
from tests.support.browser import browser_sign_in
from tests.support.factories import make_token, make_user
from tests.support.remit import RemitClaim, RemitLine, build_835
from tests.test_billing_api import _coded

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


def test_upload_835_coder_sees_denial_and_resubmits(
    page: Page, browser, live_server, make_client, backend
):
    codesets.icd10cm()
    url = live_server.url
    held = _coded(make_client, "ana")
    system = make_client()
    system.headers["Authorization"] = f"Bearer {make_token('billing-system', 'billing')}"
    assert system.get(f"/api/v1/billing/{held.item_id}/claim").status_code == 200
    r = system.post(f"/api/v1/billing/{held.item_id}/billed", json={"claim_number": "B1"})
    assert r.status_code == 200, r.text
    remit = build_835(
        [
            RemitClaim(
                f"CD{held.item_id}",
                "4",
                125,
                0,
                "PAYER-77",
                [RemitLine("99213", 125, 0, [("CO", "97", 100), ("CO", "16", 25)], ["N130"])],
            )
        ],
        trace="BROWSER-1",
    )
    biller = make_user("bill", "biller")
    coder = held.account

    context = browser.new_context()
    try:
        bp = context.new_page()
        browser_sign_in(bp, url, biller)
        bp.goto(f"{url}/billing/remittance")
        # A truncated file first: the error shows at the form, nothing stored.
        bp.set_input_files(
            "#remit-file",
            files=[{"name": "bad.835", "mimeType": "text/plain", "buffer": remit[:300].encode()}],
        )
        bp.click("#remit-submit")
        expect(bp.locator("#form-error")).to_contain_text("segment")
        expect(bp.locator("#remit-claims")).to_contain_text("No remittance posted")
        bp.set_input_files(
            "#remit-file",
            files=[{"name": "era.835", "mimeType": "text/plain", "buffer": remit.encode()}],
        )
        bp.click("#remit-submit")
        expect(bp.locator("#remit-message")).to_contain_text("Posted trace number BROWSER-1")
        expect(bp.locator("#remit-claims")).to_contain_text("CO-97")
        expect(bp.locator("#remit-claims")).to_contain_text("denied")

        browser_sign_in(page, url, coder)
        page.goto(f"{url}/work/{held.item_id}")
        page.click("#resume")
        expect(page).to_have_url(re.compile(rf"/work/{held.item_id}$"))
        denial = page.locator("#denial")
        expect(denial).to_contain_text("Denied by ACME HEALTH PLAN")
        expect(denial).to_contain_text("CO-97 Benefit included in the payment")
        expect(denial).to_contain_text("CO-16")
        expect(denial).to_contain_text("N130")
        page.wait_for_load_state("networkidle")
        expect(page.locator("#codes-ok")).to_be_visible()
        page.keyboard.press("Control+Enter")
        expect(page).to_have_url(re.compile(rf"/work\?submitted={held.item_id}"))

        bp.goto(f"{url}/billing/{held.item_id}")
        preview = bp.locator("#claim-preview")
        expect(preview).to_contain_text("REF*F8*PAYER-77~")
        expect(preview).to_contain_text(":B:7*")
    finally:
        context.close()
