"""Real Chromium: a biller reads a claim with its edit, sends a batch (a claim with edits
refused in place, the boxes kept), and finds the sent claim in the billed history."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.billing import load_demo_cdm, segments
from tests.support.browser import browser_sign_in
from tests.support.coding import GOOD_CODES, coder_with_item, pyx12_accepts
from tests.support.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


def _ready(make_client, n: int, **encounter) -> int:  # type: ignore[no-untyped-def]
    held = coder_with_item(make_client, f"coder{n}", **encounter)
    codes = {**GOOD_CODES, "procedures": [{"code": "99213", "system": "CPT", "dx_pointers": [1]}]}
    assert held.client.put(f"/api/v1/work/{held.item_id}/codes", json=codes).is_success
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    return held.item_id


def test_claim_page_batch_and_history(browser, live_server, make_client, backend):
    load_demo_cdm()
    good = _ready(make_client, 1)
    self_pay = _ready(make_client, 2, payer={"name": "Self pay"})
    biller = make_user("bill", "biller")
    url = live_server.url
    context = browser.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        browser_sign_in(page, url, biller)
        page.goto(f"{url}/billing/{self_pay}")
        expect(page.locator("#claim-errors [data-edit=claim-payer-id]")).to_be_visible()
        expect(page.locator("#claim-preview-none")).to_be_visible()
        page.goto(f"{url}/billing/{good}")
        expect(page.locator("#claim-total")).to_have_text("185.00")  # the chargemaster price
        expect(page.locator("#claim-lines")).to_contain_text("OFFICE VISIT EST PT LEVEL 3")
        expect(page.locator("#claim-preview")).to_contain_text("SV1*HC:99213*185*UN*1***1~")
        page.goto(f"{url}/billing")
        page.check(f"#pick-{good}")
        page.check(f"#pick-{self_pay}")
        page.click("#send-selected")
        expect(page.locator("#batch-error")).to_contain_text("claim edits")
        expect(page.locator("#batch-error")).to_be_focused()  # shown where the biller is
        expect(page.locator(f"#pick-{good}")).to_be_checked()
        expect(page.locator(f"#pick-{self_pay}")).to_be_checked()
        page.uncheck(f"#pick-{self_pay}")
        with page.expect_download() as dl:
            page.click("#send-selected")
        text = open(dl.value.path(), encoding="ascii").read()  # noqa: PTH123
        ok, log = pyx12_accepts(text)
        assert ok, log
        assert [s[1] for s in segments(text, "CLM")] == [f"CD{good}"]
        # The page does not keep listing (and checking) what was just sent.
        expect(page).to_have_url(f"{url}/billing?done=sent")
        expect(page.locator("#billing-message")).to_contain_text("marked billed")
        expect(page.locator(f"#pick-{good}")).to_have_count(0)
        expect(page.locator(f"#pick-{self_pay}")).not_to_be_checked()
        page.goto(f"{url}/billing/history")
        page.fill("#history-q", f"CD{good}")
        page.click("#history-search button")
        expect(page.locator("#billed-items tbody tr")).to_have_count(1)
        expect(page.locator("#billed-items")).to_contain_text(f"CD{good}")
    finally:
        context.close()
