"""Real Chromium: the QA worksheet and the rebuttal loop. A reviewer corrects a trainee's
principal diagnosis on the worksheet (a missing category comes back at its row, the edit
kept); the coder rebuts it from My reviews (a rebuttal without a reason is refused where
they typed); a second supervisor overturns it, and the decision is final."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import browser_sign_in
from tests.support.coding import GOOD_CODES
from tests.support.factories import make_encounter, make_user, sign_in

pytestmark = pytest.mark.browser


def test_worksheet_rebuttal_and_final_decision(
    page: Page, browser, live_server, backend, make_client
):
    item = make_encounter(queue="default")
    coder = make_user("tina", "coder", queues=["default"])
    reviewer = make_user("rita", "supervisor")
    boss = make_user("boss", "supervisor")
    url = live_server.url
    # The trainee codes and submits through the API (the workbench has its own tests).
    api = make_client()
    sign_in(api, coder)
    sup_api = make_client()
    sign_in(sup_api, boss)
    assert sup_api.put("/api/v1/queues/default/qa-sample", json={"percent": 100}).is_success
    assert api.post("/api/v1/work/next", json={}).json()["id"] == item
    api.put(f"/api/v1/work/{item}/codes", json=GOOD_CODES)
    assert api.post(f"/api/v1/work/{item}/submit").json()["status"] == "qa_review"

    # The reviewer's worksheet.
    context = browser.new_context()
    try:
        rp = context.new_page()
        browser_sign_in(rp, url, reviewer)
        rp.goto(f"{url}/qa/{item}")
        rp.locator("#dx-lines input[name=dx_code]").first.fill("E11.65")
        rp.click("#qa-preview")
        expect(rp.locator("#difference-1")).to_contain_text("principal diagnosis changed")
        rp.fill("#difference-1 input[name=finding_comment]", "hyperglycemia documented")
        rp.click("#qa-correct")  # no category chosen
        expect(rp.locator("#err-finding-1")).to_contain_text("choose an error category")
        expect(rp.locator("#dx-lines input[name=dx_code]").first).to_have_value("E11.65")
        expect(rp.locator("#difference-1 input[name=finding_comment]")).to_have_value(
            "hyperglycemia documented"
        )
        rp.select_option("#difference-1 select[name=finding_category]", "specificity")
        rp.click("#qa-correct")
        expect(rp).to_have_url(f"{url}/qa")
    finally:
        context.close()

    # The coder rebuts from My reviews.
    browser_sign_in(page, url, coder)
    page.click("text=My reviews")
    expect(page.locator("#my-findings")).to_contain_text("principal diagnosis changed")
    page.locator("#my-reviews a.button").first.click()
    expect(page.locator("#findings")).to_contain_text("E11.65")
    expect(page.locator("#findings")).to_contain_text("hyperglycemia documented")
    page.click("#findings button[value=false]")  # Rebut, no reason
    expect(page.locator("#form-error")).to_contain_text("Say why you disagree")
    page.fill("#findings input[name=reason]", "No hyperglycemia in the H&P")
    page.click("#findings button[value=false]")
    expect(page.locator("#findings td.status").first).to_contain_text("rebutted")
    expect(page.locator("#findings form")).to_have_count(0)

    # A second supervisor overturns it.
    context = browser.new_context()
    try:
        bp = context.new_page()
        browser_sign_in(bp, url, boss)
        bp.click("text=QA scores")
        bp.locator("#rebuttals a.button").first.click()
        expect(bp.locator("#findings")).to_contain_text("No hyperglycemia in the H&P")
        bp.fill("#findings input[name=reason]", "the H&P is normal")
        bp.click("#findings button[value=overturn]")
        expect(bp.locator("#findings td.status").first).to_contain_text("overturned")
        bp.goto(f"{url}/qa/scores")
        expect(bp.locator("#rebuttals")).to_contain_text("No rebuttal is waiting")
        expect(bp.locator("#scores")).to_contain_text("tina")
    finally:
        context.close()

    page.reload()
    expect(page.locator("#findings td.status").first).to_contain_text("overturned")
    expect(page.locator("#findings")).to_contain_text("the H&P is normal")
    (finding,) = api.get("/api/v1/qa/findings").json()["items"]
    assert finding["status"] == "overturned"
    again = api.post(
        f"/api/v1/qa/findings/{finding['id']}/response", json={"agree": False, "reason": "again"}
    )
    assert again.status_code == 422  # the decision is final


def test_retrospective_review_of_a_billed_chart_becomes_a_replacement_claim(
    page: Page, browser, live_server, backend, make_client
):
    from tests.support.factories import make_token

    item = make_encounter(queue="default")
    coder = make_user("tom", "coder", queues=["default"])
    reviewer = make_user("rita", "supervisor")
    biller = make_user("bea", "biller")
    url = live_server.url
    api = make_client()
    sign_in(api, coder)
    assert api.post("/api/v1/work/next", json={}).json()["id"] == item
    api.put(f"/api/v1/work/{item}/codes", json=GOOD_CODES)
    assert api.post(f"/api/v1/work/{item}/submit").json()["status"] == "ready_for_billing"
    system = make_client()
    system.headers["Authorization"] = f"Bearer {make_token('billing-system', 'billing')}"
    r = system.post(f"/api/v1/billing/{item}/billed", json={"claim_number": "PAYER-5"})
    assert r.status_code == 200, r.text

    # The reviewer sends the billed chart back from the QA page and corrects it.
    context = browser.new_context()
    try:
        rp = context.new_page()
        browser_sign_in(rp, url, reviewer)
        rp.goto(f"{url}/qa")
        rp.click(f"#retrospective-{item}")
        expect(rp).to_have_url(f"{url}/qa/{item}")
        expect(rp.locator("#retrospective")).to_contain_text("retrospective review")
        rp.locator("#dx-lines input[name=dx_code]").first.fill("E11.65")
        rp.click("#qa-preview")
        expect(rp.locator("#difference-1")).to_contain_text("principal diagnosis changed")
        rp.select_option("#difference-1 select[name=finding_category]", "specificity")
        rp.click("#qa-correct")
        expect(rp).to_have_url(f"{url}/qa")
    finally:
        context.close()

    # The biller sees a replacement of the claim billed, on the list and the claim page.
    browser_sign_in(page, url, biller)
    page.goto(f"{url}/billing")
    expect(page.locator(f"#replaces-{item}")).to_contain_text("replacement of claim PAYER-5")
    page.locator(f"#ready-{item} a.button").click()
    expect(page.locator("#claim-replaces")).to_contain_text("replacement of claim PAYER-5")
