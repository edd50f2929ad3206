"""The coder picks a claim line by its chargemaster charge code on the workbench: the
charge code sets the line's HCPCS/CPT code (when left blank), revenue code, description and
price; an unknown charge code, or one billing another code, is an error at the line."""

from __future__ import annotations

from sqlmodel import Session

from server.billing import cdm
from server.db import get_engine
from tests.support.billing import load_demo_cdm, segments
from tests.support.coding import coder_with_item
from tests.support.factories import make_token


def _put(held, *lines):
    body = {"diagnoses": [{"code": "E11.9"}, {"code": "I10"}], "procedures": list(lines)}
    r = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_charge_code_sets_the_code_revenue_code_and_price(make_client, monkeypatch):
    load_demo_cdm()
    monkeypatch.setenv("CHARTDESK_BILLING_FACILITY_SETTING", "hospital")
    from server.config import get_settings

    get_settings.cache_clear()
    held = coder_with_item(make_client)
    page = held.client.get(f"/work/{held.item_id}")
    assert page.status_code == 200
    assert 'name="px_charge_code"' in page.text
    assert '<option value="OV99213">' in page.text  # the chargemaster to pick from

    got = _put(
        held,
        {"code": "", "charge_code": "OV99213", "dx_pointers": [1, 2]},
        {"code": "36415", "charge_code": "LAB36415", "dx_pointers": [1]},
    )
    assert got["errors"] == [], got
    chart = held.client.get(f"/api/v1/work/{held.item_id}").json()
    lines = chart["codes"]["procedures"]
    assert [(p["system"], p["code"], p["charge_code"]) for p in lines] == [
        ("CPT", "99213", "OV99213"),
        ("CPT", "36415", "LAB36415"),
    ]
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    system = make_client()
    system.headers["Authorization"] = f"Bearer {make_token('billing-system', 'billing')}"
    x = system.get(f"/api/v1/billing/{held.item_id}/claim", params={"format": "x12"})
    assert x.status_code == 200, x.text
    # A hospital outpatient claim: each picked charge line's revenue code, code and price.
    assert [s[1:4] for s in segments(x.text, "SV2")] == [
        ["0510", "HC:99213", "185"],
        ["0300", "HC:36415", "28"],
    ]


def test_an_unknown_or_mismatched_charge_code_is_an_error_at_the_line(make_client):
    load_demo_cdm()
    held = coder_with_item(make_client)
    got = _put(
        held,
        {"code": "", "charge_code": "NOPE1", "dx_pointers": [1]},
        {"code": "99214", "charge_code": "OV99213", "dx_pointers": [1]},
    )
    charge = [e for e in got["errors"] if e["code"] == "charge-code"]
    assert [e["loc"] for e in charge] == [
        ["procedures", 0, "charge_code"],
        ["procedures", 1, "charge_code"],
    ]
    assert "NOPE1 is not in the chargemaster" in charge[0]["msg"]
    assert "bills 99213" in charge[1]["msg"]


def test_only_charge_lines_with_a_code_are_offered(db_url):
    load_demo_cdm()
    from datetime import date

    with Session(get_engine()) as s:
        offered = cdm.pickable(s, on=date(2026, 11, 1))
    assert offered
    assert all(c.hcpcs for c in offered)
    assert [c.charge_code for c in offered] == sorted(c.charge_code for c in offered)


def test_the_workbench_form_takes_a_line_by_charge_code_alone(make_client):
    load_demo_cdm()
    held = coder_with_item(make_client)
    form = {
        "dx_code": ["E11.9", "I10"],
        "dx_poa": ["", ""],
        "px_system": ["CPT"],
        "px_code": [""],
        "px_modifiers": [""],
        "px_units": ["1"],
        "px_pointers": ["1 2"],
        "px_charge": ["0"],
        "px_charge_code": ["OV99213"],
    }
    htmx = {"HX-Request": "true"}
    saved = held.client.post(f"/work/{held.item_id}/codes", data=form, headers=htmx)
    assert saved.status_code == 200, saved.text
    assert "No errors: ready to submit." in saved.text
    line = held.client.get(f"/api/v1/work/{held.item_id}").json()["codes"]["procedures"][0]
    assert (line["code"], line["charge_code"]) == ("99213", "OV99213")
    page = held.client.get(f"/work/{held.item_id}")
    assert 'value="OV99213"' in page.text  # the picked charge code stays on the line


def test_the_check_answers_what_a_picked_charge_code_sets_at_its_line(make_client):
    """Picked on screen, before any save: the as-you-type check says which code and charge
    the charge code sets on that line (workbench.js fills the line with them)."""
    load_demo_cdm()
    held = coder_with_item(make_client)
    form = {
        "dx_code": ["E11.9", "I10"],
        "dx_poa": ["", ""],
        "px_system": ["CPT", "CPT"],
        "px_code": ["", "36415"],
        "px_modifiers": ["", ""],
        "px_units": ["2", "1"],
        "px_pointers": ["1 2", "1"],
        "px_charge": ["0", "0"],
        "px_charge_code": ["OV99213", ""],
    }
    htmx = {"HX-Request": "true"}
    checked = held.client.post(f"/work/{held.item_id}/codes/check", data=form, headers=htmx)
    assert checked.status_code == 200, checked.text
    assert 'data-fill-line="0"' in checked.text
    assert 'data-code="99213"' in checked.text
    assert 'data-charge="370.00"' in checked.text  # 185.00 a unit, two units
    assert "Line 1: charge code OV99213" in checked.text
    assert 'data-fill-line="1"' not in checked.text  # no charge code picked there
    # Nothing was saved by the check.
    saved = held.client.get(f"/api/v1/work/{held.item_id}").json()["codes"]["procedures"]
    assert saved == []
    # The save on change answers the same, so the later of the two answers fills too.
    again = held.client.post(f"/work/{held.item_id}/codes", data=form, headers=htmx)
    assert 'data-charge="370.00"' in again.text
    # An unknown charge code fills nothing and is the panel's error.
    form["px_charge_code"] = ["NOPE1", ""]
    bad = held.client.post(f"/work/{held.item_id}/codes/check", data=form, headers=htmx)
    assert "charge-fill" not in bad.text
    assert "No errors: ready to submit." not in bad.text
