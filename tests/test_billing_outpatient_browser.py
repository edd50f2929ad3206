"""Real Chromium: at a hospital, a biller reads an outpatient visit's claim as an 837I
(type of bill 013x) whose lines came from the charge codes the coder picked."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from server.config import get_settings
from tests.support.billing import load_demo_cdm
from tests.support.browser import browser_sign_in
from tests.support.coding import coder_with_item
from tests.support.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


def test_a_hospital_outpatient_claim_page(browser, live_server, make_client, monkeypatch):
    monkeypatch.setenv("CHARTDESK_BILLING_FACILITY_SETTING", "hospital")
    get_settings.cache_clear()
    load_demo_cdm()
    held = coder_with_item(make_client)
    codes = {
        "diagnoses": [{"code": "E11.9"}, {"code": "I10"}],
        "procedures": [
            {"code": "", "charge_code": "OV99213", "dx_pointers": [1, 2]},
            {"code": "", "charge_code": "LAB36415", "dx_pointers": [1]},
        ],
    }
    r = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=codes)
    assert r.json()["errors"] == [], r.text
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    url = live_server.url
    context = browser.new_context()
    try:
        page = context.new_page()
        browser_sign_in(page, url, make_user("bill", "biller"))
        page.goto(f"{url}/billing/{held.item_id}")
        expect(page.locator("h1")).to_contain_text("hospital outpatient (013x)")
        expect(page.locator("#claim-bill-type")).to_contain_text("0131")
        expect(page.locator("#claim-total")).to_have_text("213.00")
        expect(page.locator("#claim-lines")).to_contain_text("0510")
        expect(page.locator("#claim-preview")).to_contain_text("CLM*CD")
        expect(page.locator("#claim-preview")).to_contain_text("13:A:1")
        expect(page.locator("#claim-preview")).to_contain_text("SV2*0510*HC:99213*185*UN*1~")
        expect(page.locator("#claim-preview")).to_contain_text("SV2*0300*HC:36415*28*UN*1~")
    finally:
        context.close()
