"""Code entry, validation messages, submit, QA sampling and review, through the HTTP API."""

from __future__ import annotations

import re
from pathlib import Path

from sqlmodel import Session, col, select

from server.coding.schemas import Codes
from server.db import get_engine
from server.models import AuditEvent, ItemCodes, WorkItem, WorkItemEvent
from tests.support.coding import GOOD_CODES, coder_with_item, saved_codes, signed_in


def _msgs(body: dict) -> list[str]:
    return [e["msg"] for e in body["errors"]]


def _saved(item_id: int) -> Codes:
    """The item's stored lines, opened from their sealed value."""
    with Session(get_engine()) as s:
        return saved_codes(s, item_id)


def test_real_codes_are_accepted_and_saved(make_client):
    held = coder_with_item(make_client)
    r = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert r.status_code == 200, r.text
    assert r.json()["errors"] == []
    # Only the tabular list's reminders (E11 "use additional code" for insulin, ...).
    assert {w["code"] for w in r.json()["warnings"]} == {"use-additional-code"}
    got = held.client.get(f"/api/v1/work/{held.item_id}").json()["codes"]
    assert [d["code"] for d in got["diagnoses"]] == ["E11.9", "I10", "J45.909"]
    assert got["procedures"][0]["dx_pointers"] == [1, 2]


def test_header_unknown_code_and_absent_cpt_are_rejected_with_clear_messages(
    make_client, tmp_path: Path
):
    from server.coding import codesets

    cpt = tmp_path / "cpt.txt"
    cpt.write_text("99213\tOffice visit\n99214\tOffice visit\n")
    with Session(get_engine()) as s:
        codesets.load(s, system="CPT", path=cpt)
        s.commit()
    held = coder_with_item(make_client)
    body = {
        "diagnoses": [{"code": "E11"}, {"code": "ZZZ.9"}],
        "procedures": [{"code": "99215", "system": "CPT", "dx_pointers": [1]}],
    }
    r = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=body)
    assert r.status_code == 200
    msgs = _msgs(r.json())
    assert any(
        "E11 (Type 2 diabetes mellitus) is a category header, not a billable code" in m
        and "E11.0" in m
        for m in msgs
    ), msgs
    assert any(m.startswith("ZZZ.9 is not an ICD-10-CM code") for m in msgs), msgs
    assert any("99215 is not in the CPT code set loaded on this server" in m for m in msgs), msgs
    # The draft was saved anyway, and Submit refuses it with the same errors.
    saved = _saved(held.item_id)
    assert len(saved.diagnoses) + len(saved.procedures) == 3
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_failed"
    assert len(r.json()["error"]["details"]) == 3
    with Session(get_engine()) as s:
        item = s.get(WorkItem, held.item_id)
        assert item is not None
        assert item.status == "in_progress"
        failed = s.exec(
            select(AuditEvent).where(AuditEvent.action == "submit", AuditEvent.outcome == "failed")
        ).all()
        assert len(failed) == 1


def test_poa_required_on_inpatient_and_values_checked(make_client):
    held = coder_with_item(make_client, **{"class": "inpatient"})
    body = {
        "diagnoses": [
            {"code": "E11.9", "poa": "Y"},
            {"code": "I10"},
            {"code": "J45.909", "poa": "X"},
        ]
    }
    msgs = _msgs(held.client.put(f"/api/v1/work/{held.item_id}/codes", json=body).json())
    assert any("Diagnosis 2 (I10) needs a present-on-admission indicator" in m for m in msgs)
    assert any("POA 'X' is not valid" in m for m in msgs)
    assert len(msgs) == 2
    body = {"diagnoses": [{"code": "E11.9", "poa": "Y"}, {"code": "I10", "poa": "1"}]}
    assert _msgs(held.client.put(f"/api/v1/work/{held.item_id}/codes", json=body).json()) == []


def test_pointers_duplicates_manifestation_and_empty(make_client):
    held = coder_with_item(make_client)
    url = f"/api/v1/work/{held.item_id}/codes"
    body = {
        "diagnoses": [{"code": "G63"}, {"code": "I10"}, {"code": "i10"}],
        "procedures": [
            {"code": "99213", "system": "CPT", "dx_pointers": [1, 4]},
            {"code": "99213", "system": "CPT", "dx_pointers": [1, 4]},
            {"code": "J110", "system": "HCPCS", "dx_pointers": [1]},
            {"code": "0DTJ4ZO", "system": "PCS"},
            {"code": "99214", "system": "CPT"},
        ],
    }
    r = held.client.put(url, json=body).json()
    msgs = _msgs(r)
    assert any(
        "G63 (Polyneuropathy in diseases classified elsewhere) is a manifestation code" in m
        for m in msgs
    )
    assert any("i10 is listed twice" in m for m in msgs)
    assert sum("points at diagnosis 4, but there are 3 diagnosis lines" in m for m in msgs) == 2
    assert any("Procedure 2 (99213) repeats an earlier line" in m for m in msgs)
    assert any("J110 is not a valid HCPCS Level II code" in m for m in msgs)
    assert any("0DTJ4ZO is not a valid ICD-10-PCS code" in m for m in msgs)
    assert any("Procedure 5 (99214) must point at the diagnosis it treats" in m for m in msgs)
    assert any("inpatient" in w["msg"] for w in r["warnings"])  # PCS on an outpatient visit
    empty = held.client.put(url, json={"diagnoses": [], "procedures": []}).json()
    assert _msgs(empty) == ["Add at least one diagnosis."]


def test_submit_goes_to_billing_and_records_the_coder(make_client):
    held = coder_with_item(make_client)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready_for_billing"
    with Session(get_engine()) as s:
        item = s.get(WorkItem, held.item_id)
        assert item is not None
        assert item.coded_by_id == held.account.user_id
        assert item.coded_at is not None
        assert item.lease_owner_id is None
        events = s.exec(
            select(WorkItemEvent.action).where(WorkItemEvent.work_item_id == held.item_id)
        ).all()
        assert events[-1] == "submit"
        actions = s.exec(
            select(AuditEvent.action)
            .where(AuditEvent.work_item_id == held.item_id)
            .order_by(col(AuditEvent.id))
        ).all()
        assert "code-save" in actions
        assert "submit" in actions
    # The lease ended with the submit: the coder can no longer change the codes.
    r = held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert r.status_code == 409


def test_trainee_work_always_goes_to_qa_and_accuracy_is_kept(make_client):
    held = coder_with_item(make_client, "trainee", in_training=True)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.json()["status"] == "qa_review"
    sup = signed_in(make_client, "sup1", "supervisor")
    queue = sup.get("/api/v1/qa").json()["items"]
    assert [i["id"] for i in queue] == [held.item_id]
    assert queue[0]["coded_by"] == "trainee"
    # Correcting needs a change, and a category for each difference it makes.
    r = sup.post(f"/api/v1/qa/{held.item_id}", json={"decision": "correct", "codes": GOOD_CODES})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["codes"]
    corrected = {**GOOD_CODES, "diagnoses": [{"code": "E11.65"}, {"code": "I10"}]}
    r = sup.post(
        f"/api/v1/qa/{held.item_id}",
        json={
            "decision": "correct",
            "reason": "hyperglycemia documented",
            "codes": corrected,
            "findings": [{"category": "specificity"}, {"category": "documentation_not_supported"}],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready_for_billing"
    # Counted once final: the findings wait for the coder's answer.
    assert sup.get("/api/v1/qa/accuracy").json()["items"] == []
    for finding in held.client.get("/api/v1/qa/findings").json()["items"]:
        r = held.client.post(f"/api/v1/qa/findings/{finding['id']}/response", json={"agree": True})
        assert r.status_code == 200, r.text
    acc = sup.get("/api/v1/qa/accuracy").json()["items"]
    assert acc == [
        {"coder": "trainee", "reviewed": 1, "accepted": 0, "corrected": 1, "accuracy_percent": 0.0}
    ]
    page = sup.get("/qa")
    assert page.status_code == 200
    assert "trainee" in page.text
    assert "<title>QA review · Chartdesk</title>" in page.text
    assert page.text.count('id="qa-sampling"') == 1
    with Session(get_engine()) as s:
        assert [d.code for d in _saved(held.item_id).diagnoses] == ["E11.65", "I10"]
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "qa-decision")).first()


def test_queue_sample_percent_sends_everything_to_qa_at_100(make_client):
    sup = signed_in(make_client, "sup1", "supervisor")
    r = sup.put("/api/v1/queues/default/qa-sample", json={"percent": 100})
    assert r.status_code == 200
    held = coder_with_item(make_client)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").json()["status"] == "qa_review"
    r = sup.post(f"/api/v1/qa/{held.item_id}", json={"decision": "accept"})
    assert r.json()["status"] == "ready_for_billing"
    acc = sup.get("/api/v1/qa/accuracy").json()["items"]
    assert acc[0]["accuracy_percent"] == 100.0


def test_search_endpoint(make_client):
    held = coder_with_item(make_client)
    r = held.client.get("/api/v1/codes/search", params={"q": "type 2 diabetes without"})
    assert r.status_code == 200
    assert r.json()["items"][0]["code"] == "E11.9"
    r = held.client.get("/api/v1/codes/search", params={"q": "E11"})
    first = r.json()["items"][0]
    assert first == {
        "system": "ICD10CM",
        "code": "E11",
        "description": "Type 2 diabetes mellitus",
        "billable": False,
    }
    html = held.client.get("/codes/search", params={"q": "asthma unc"}).text
    assert '<option value="J45.909">' in html


def test_qa_pages_show_the_chart_and_accept_by_form(make_client):
    held = coder_with_item(make_client, "trainee", in_training=True)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    held.client.post(f"/api/v1/work/{held.item_id}/submit")
    sup = signed_in(make_client, "sup1", "supervisor")
    page = sup.get(f"/qa/{held.item_id}")
    assert page.status_code == 200
    assert 'value="J45.909"' in page.text
    assert 'class="document"' in page.text
    # The Description column says what each code is (from the code sets, as the workbench).
    assert re.search(r'value="E11\.9".*?class="code-title"[^>]*>Type 2 diabetes', page.text, re.S)
    assert re.search(r'value="I10".*?class="code-title"[^>]*>Essential', page.text, re.S)
    r = sup.post(
        f"/qa/{held.item_id}",
        data={"decision": "accept", "csrf_token": sup.headers["X-CSRF-Token"]},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert sup.get(f"/qa/{held.item_id}").status_code == 404  # no longer waiting
    with Session(get_engine()) as s:
        views = s.exec(
            select(AuditEvent).where(
                AuditEvent.work_item_id == held.item_id,
                AuditEvent.action == "view-record",
                AuditEvent.actor == "sup1",
            )
        ).all()
        # The chart view, then the refused look once the item left QA review.
        assert [v.outcome for v in views] == ["success", "denied"]


def test_supervisor_sets_sampling_and_trainees_from_the_qa_page(make_client):
    from tests.support.factories import make_user

    make_user("newbie", "coder", queues=["default"])
    sup = signed_in(make_client, "sup1", "supervisor")
    csrf = sup.headers["X-CSRF-Token"]
    r = sup.post(
        "/qa/queues/default/sample",
        data={"percent": 25, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = sup.post(
        "/qa/users/newbie/training",
        data={"in_training": "true", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = sup.get("/qa").text
    assert 'value="25"' in page
    assert "End training" in page
    bad = sup.post("/qa/queues/default/sample", data={"percent": 101, "csrf_token": csrf})
    assert bad.status_code == 422
    with Session(get_engine()) as s:
        from server.models import Queue, User

        assert s.exec(select(Queue).where(Queue.name == "default")).one().qa_sample_percent == 25
        assert s.exec(select(User).where(User.username == "newbie")).one().in_training


def test_checking_as_you_type_saves_nothing_and_a_change_saves_the_draft(make_client):
    held = coder_with_item(make_client)
    form = {
        "dx_code": ["E11", "I10"],
        "dx_poa": ["", ""],
        "px_system": ["CPT"],
        "px_code": ["99213"],
        "px_modifiers": ["25"],
        "px_units": ["1"],
        "px_pointers": ["1 2"],
        "px_charge": ["80"],
    }
    htmx = {"HX-Request": "true"}
    check = held.client.post(f"/work/{held.item_id}/codes/check", data=form, headers=htmx)
    assert check.status_code == 200
    assert "is a category header" in check.text
    with Session(get_engine()) as s:
        assert s.get(ItemCodes, held.item_id) is None
        assert not s.exec(select(AuditEvent).where(AuditEvent.action == "code-save")).all()
    form["dx_code"] = ["E11.9", "I10"]
    saved = held.client.post(f"/work/{held.item_id}/codes", data=form, headers=htmx)
    assert "No errors: ready to submit." in saved.text
    codes = held.client.get(f"/api/v1/work/{held.item_id}").json()["codes"]
    assert codes["procedures"][0] == {
        "code": "99213",
        "system": "CPT",
        "modifiers": ["25"],
        "units": 1,
        "dx_pointers": [1, 2],
        "charge": 80.0,
        "evidence": [],
        "charge_code": None,
    }
    bad = held.client.post(
        f"/work/{held.item_id}/codes", data={**form, "px_units": ["two"]}, headers=htmx
    )
    assert bad.status_code == 422
    r = held.client.post(f"/work/{held.item_id}/submit", data=form, headers=htmx)
    assert r.status_code == 204
    went = f"/work?submitted={held.item_id}&to=ready_for_billing&warnings="
    assert r.headers["HX-Redirect"].startswith(went)


def test_a_negative_number_of_units_is_refused_by_name_and_nothing_is_saved(make_client):
    held = coder_with_item(make_client)
    form = {
        "dx_code": ["E11.9"],
        "dx_poa": [""],
        "px_system": ["CPT"],
        "px_code": ["99213"],
        "px_units": ["-2"],
        "px_pointers": ["1"],
        "px_charge": ["80"],
    }
    htmx = {"HX-Request": "true"}
    for path in ("codes", "codes/check", "submit"):
        r = held.client.post(f"/work/{held.item_id}/{path}", data=form, headers=htmx)
        assert r.status_code == 422, path
        assert "Procedure line 1: Units must be a whole number of 1 or more" in r.text
        assert "must be numbers" not in r.text
    r = held.client.put(
        f"/api/v1/work/{held.item_id}/codes",
        json={**GOOD_CODES, "procedures": [{"code": "99213", "system": "CPT", "units": 0}]},
    )
    assert r.status_code == 422
    with Session(get_engine()) as s:
        assert s.get(ItemCodes, held.item_id) is None
        assert s.get(WorkItem, held.item_id).status == "in_progress"
