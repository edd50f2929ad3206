"""axe-core (from the npm registry, pinned in package-lock.json) on every page a person
uses, as each role sees it: no serious or critical violations, and no console errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from server.coding import codesets
from tests.support.coding import GOOD_CODES, coder_with_item
from tests.support.factories import Account, fresh_totp, make_encounter, make_user

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


def _sign_in(page: Page, url: str, account: Account) -> None:
    page.goto(f"{url}/login")
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    page.fill("#totp", fresh_totp(account))
    page.click("#sign-in")
    page.wait_for_selector("#home-title")


def _violations(page: Page) -> list[dict[str, Any]]:
    # The test's own context may bypass CSP to inject axe; the app's pages do not change.
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture
def audit_pages(browser: Browser, live_server):
    """Open each (role, path) in a fresh context and collect violations and console errors."""
    found: dict[str, Any] = {}

    def run(account: Account, paths: list[str]) -> None:
        context = browser.new_context(bypass_csp=True, viewport={"width": 1366, "height": 768})
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            _sign_in(page, live_server.url, account)
            for path in paths:
                page.goto(f"{live_server.url}{path}")
                page.wait_for_load_state("networkidle")
                bad = _violations(page)
                if bad or errors:
                    found[f"{account.username} {path}"] = {"axe": bad, "console": list(errors)}
                errors.clear()
        finally:
            context.close()

    return run, found


def test_every_page_passes_axe_for_each_role(audit_pages, make_client, backend) -> None:
    if not AXE.is_file():
        pytest.fail("node_modules/axe-core is missing: run make install (npm ci)")
    codesets.icd10cm()
    run, found = audit_pages
    held = coder_with_item(make_client, "ana")  # a chart leased to ana
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    other = make_encounter()
    ana = held.account
    run(
        ana,
        [
            "/home",
            "/work",
            f"/work/{held.item_id}",
            "/emergency-access",
            "/reports/mine",
            "/qa/mine",
        ],
    )
    boss = make_user("boss", "supervisor", queues=["default"])
    run(
        boss,
        [
            "/supervise",
            "/routing",
            "/qa",
            "/qa/scores",
            "/qa/queues/default/sampling",
            "/reports/denials",
        ],
    )
    reports = ["productivity", "standards", "casemix", "cc-capture", "drg-shifts"]
    run(boss, [f"/reports/{r}" for r in reports])
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    billing = ["/billing", f"/billing/{held.item_id}", "/billing/history", "/billing/remittance"]
    run(make_user("bill", "biller"), [*billing, "/reports/denials"])
    run(make_user("cora", "compliance"), ["/compliance", "/compliance/flags", "/compliance/verify"])
    run(make_user("root", "admin"), ["/admin/users", "/admin/tokens"])
    assert other
    assert found == {}


def test_the_qa_worksheet_and_review_pages_pass_axe(audit_pages, make_client, backend) -> None:
    from tests.support.coding import signed_in

    codesets.icd10cm()
    run, found = audit_pages
    held = coder_with_item(make_client, "tia", in_training=True)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").json()["status"] == "qa_review"
    rita = make_user("rita", "supervisor")
    run(rita, [f"/qa/{held.item_id}"])
    sup = signed_in(make_client, "sam", "supervisor")
    corrected = {**GOOD_CODES, "diagnoses": [{"code": "E11.65"}, {"code": "I10"}]}
    r = sup.post(
        f"/api/v1/qa/{held.item_id}",
        json={
            "decision": "correct",
            "codes": corrected,
            "findings": [{"category": "specificity"}, {"category": "clerical"}],
        },
    )
    assert r.status_code == 200, r.text
    (first, *_) = held.client.get("/api/v1/qa/findings").json()["items"]
    run(held.account, ["/qa/mine", f"/qa/reviews/{first['review_id']}"])
    run(rita, [f"/qa/reviews/{first['review_id']}", "/qa/scores?by=month"])
    assert found == {}
