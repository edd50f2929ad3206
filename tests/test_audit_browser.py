"""Real Chromium: a coder reads a chart; compliance searches the patient's MRN and sees it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import browser_sign_in
from tests.support.factories import make_encounter, make_user

# PostgreSQL only: the API tests cover both backends; a browser adds the page, not the DB.
pytestmark = [pytest.mark.browser, pytest.mark.pg_only]

MRN = "MRN-BROWSER-4410"
PATIENT = {
    "mrn": MRN,
    "name": "Tobias Lindqvist",
    "birth_date": "1958-07-02",
    "sex": "male",
}


def test_compliance_finds_the_coders_view_by_mrn(
    page: Page, browser: Browser, live_server, backend
) -> None:
    item = make_encounter(queue="default", priority=5, patient=PATIENT)
    coder = make_user("ana", "coder", queues=["default"])
    officer = make_user("olga", "compliance")
    url = live_server.url

    browser_sign_in(page, url, coder)
    page.goto(f"{url}/work")
    page.click("#next")
    expect(page).to_have_url(f"{url}/work/{item}")
    expect(page.locator("#chart")).to_be_visible()

    context = browser.new_context()
    try:
        comp = context.new_page()
        browser_sign_in(comp, url, officer)
        comp.click("nav >> text=Audit log")
        expect(comp).to_have_url(f"{url}/compliance")
        # Search by MRN (posted, never in the URL): the coder's view of that chart is there.
        comp.fill("input[name=mrn]", MRN.lower())
        comp.click("#search")
        # (The chart page and its panels each read the record: one event per read.)
        rows = comp.locator('#events tr[data-action="view-record"]')
        expect(rows.first).to_contain_text("ana")
        for text in rows.all_inner_texts():
            assert "ana" in text
            assert str(item) in text
        assert MRN.lower() not in comp.url
        # The per-patient access report shows the same.
        comp.click("text=Patient access report")
        comp.fill("#patient-form input[name=mrn]", MRN)
        comp.click("#patient-search")
        expect(comp.locator('#by-actor tr[data-actor="ana"]')).to_be_visible()
        assert MRN not in comp.url
        comp.click("text=Chain verification")
        expect(comp.locator("#verify-status")).to_have_attribute("data-ok", "true")
    finally:
        context.close()


def test_show_identity_beside_a_patient_id(
    page: Page, browser: Browser, live_server, backend
) -> None:
    """The name and MRN come only when asked for, in place, and the look is audited with
    the purpose of use the officer picked (default HCOMPL)."""
    from sqlmodel import Session, col, select

    from server.db import get_engine
    from server.models import AuditEvent

    make_encounter(queue="default", priority=5, patient=PATIENT)
    coder = make_user("ana", "coder", queues=["default"])
    officer = make_user("olga", "compliance")
    url = live_server.url
    browser_sign_in(page, url, coder)
    page.goto(f"{url}/work")
    page.click("#next")
    expect(page.locator("#chart")).to_be_visible()

    context = browser.new_context()
    try:
        comp = context.new_page()
        browser_sign_in(comp, url, officer)
        comp.goto(f"{url}/compliance")
        expect(comp.locator("#activity")).to_contain_text("Activity over time")
        comp.fill("input[name=actor]", "ana")
        comp.click("#search")
        row = comp.locator('#events tr[data-action="view-record"]').first
        expect(row).to_be_visible()
        assert "Tobias Lindqvist" not in comp.content()
        button = row.locator("button[data-identity]")
        # Label in name (WCAG 2.5.3, axe label-content-name-mismatch): say what is seen.
        assert (button.get_attribute("aria-label") or "").startswith("Show identity")
        button.focus()
        comp.keyboard.press("Enter")  # by keyboard: focus lands on the name, not the page top
        expect(row.locator(".identity")).to_contain_text("Tobias Lindqvist")
        expect(row.locator(".identity")).to_be_focused()
        expect(row.locator(".identity")).to_contain_text(MRN)
        assert MRN not in comp.url
        # The officer picks another purpose of use: the next lookup is audited with it.
        comp.click("#search")
        row = comp.locator('#events tr[data-action="view-record"]').first
        expect(row.locator("button[data-identity]")).to_be_visible()
        expect(comp.locator("#events-purpose")).to_have_value("HCOMPL")
        comp.select_option("#events-purpose", "HOPERAT")
        row.locator("button[data-identity]").click()
        expect(row.locator(".identity")).to_contain_text(MRN)
    finally:
        context.close()
    with Session(get_engine()) as s:
        looks = s.exec(
            select(AuditEvent)
            .where(AuditEvent.actor == "olga", AuditEvent.action == "identity-lookup")
            .order_by(col(AuditEvent.id))
        ).all()
    assert [(e.outcome, e.purpose) for e in looks] == [
        ("success", "HCOMPL"),
        ("success", "HOPERAT"),
    ]
