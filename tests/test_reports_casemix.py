"""Issue 16's inpatient reports and issue 20's leftovers: case-mix index, CC/MCC capture and
DRG shifts from a scripted history (figures worked out by hand from CMS's FY2026 Table 5),
the productivity standards page, a coder's QA results, and the compliance officer's
activity chart and identity lookup (audited, refusals too)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from server.db import get_engine
from server.models import (
    AuditEvent,
    Encounter,
    ProductivityStandard,
    QaReview,
    Status,
    WorkItem,
)
from server.reports import casemix
from tests.support.coding import coder_with_item, signed_in
from tests.support.factories import fresh_totp, make_user, sign_in
from tests.support.queue import dummy_item, ensure_queue

# FY2026 Table 5 (MS-DRG v43) relative weights used below.
W291, W293, W470, W871 = 1.2838, 0.566, 1.9289, 1.9425


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _stay(
    *,
    coder: int,
    queue: str,
    coded: str,
    drg: str | None,
    version: str | None = "43.0",
    cc: int | None = 0,
    mcc: int | None = 0,
    klass: str = "inpatient",
    baseline: str | None = None,
) -> int:
    """A submitted stay with its final DRG and CC/MCC counts (dummy ciphertext)."""
    queue_id = ensure_queue(queue)
    with Session(get_engine(), expire_on_commit=False) as s:
        item = dummy_item(
            s,
            queue_id=queue_id,
            encounter={"encounter_class": klass},
            status=Status.ready_for_billing,
            coded_by_id=coder,
            coded_at=_at(coded),
            baseline_drg=baseline,
            baseline_drg_version=version if baseline else None,
            final_drg=drg,
            final_drg_version=version if drg else None,
            final_cc_count=cc,
            final_mcc_count=mcc,
        )
        s.commit()
        assert item.id is not None
        return item.id


def _history() -> tuple[int, int]:
    cora = make_user("cora", "coder").user_id
    dev = make_user("dev", "coder").user_id
    _stay(coder=cora, queue="inpt", coded="2026-09-10T10:00", drg="291", mcc=1)  # captured
    _stay(coder=cora, queue="inpt", coded="2026-09-20T10:00", drg="293", baseline="292")
    _stay(coder=cora, queue="inpt2", coded="2026-10-05T10:00", drg="871", mcc=1)  # captured
    _stay(coder=dev, queue="inpt", coded="2026-10-15T10:00", drg="470", cc=None, mcc=None)
    _stay(coder=dev, queue="inpt2", coded="2026-10-20T10:00", drg="292", version="42.0", cc=1)
    _stay(coder=dev, queue="inpt", coded="2026-10-21T10:00", drg=None, klass="outpatient")
    _stay(coder=cora, queue="inpt", coded="2026-08-31T23:00", drg="291", mcc=1)  # before
    return cora, dev


WINDOW = "since=2026-09-01&until=2026-10-31"


def _figures(body: dict) -> dict[str, tuple]:
    return {
        g["key"]: (
            g["stays"],
            g["weighted_stays"],
            g["cmi"],
            g["capture_stays"],
            g["captured"],
            g["capture_rate"],
        )
        for g in [*body["groups"], body["total"]]
    }


def test_case_mix_and_capture_by_coder_queue_and_month(make_client):
    _history()
    sup = signed_in(make_client, "sue", "supervisor")
    by_coder = sup.get(f"/api/v1/reports/casemix?by=coder&{WINDOW}").json()
    # cora: 291, 293, 871 -> (1.2838 + 0.566 + 1.9425) / 3; 2 of 3 with a CC/MCC.
    # dev: 470 weighted (the v42.0 stay has no Table 5 here); the 470 stay predates the counts.
    assert _figures(by_coder) == {
        "cora": (3, 3, round((W291 + W293 + W871) / 3, 4), 3, 2, 66.7),
        "dev": (2, 1, W470, 1, 1, 100.0),
        "all": (5, 4, round((W291 + W293 + W871 + W470) / 4, 4), 4, 3, 75.0),
    }
    assert _figures(by_coder)["cora"][2] == 1.2641
    by_queue = sup.get(f"/api/v1/reports/cc-capture?by=queue&{WINDOW}").json()
    assert _figures(by_queue)["inpt"] == (3, 3, round((W291 + W293 + W470) / 3, 4), 2, 1, 50.0)
    assert _figures(by_queue)["inpt2"] == (2, 1, W871, 2, 2, 100.0)
    by_month = sup.get(f"/api/v1/reports/casemix?by=month&{WINDOW}").json()
    assert _figures(by_month)["2026-09"] == (2, 2, round((W291 + W293) / 2, 4), 2, 1, 50.0)
    assert _figures(by_month)["2026-10"] == (3, 2, round((W871 + W470) / 2, 4), 2, 2, 100.0)
    assert [g["key"] for g in by_month["groups"]] == ["2026-09", "2026-10"]

    bad = sup.get("/api/v1/reports/casemix?by=patient")
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["loc"] == ["by"]

    page = sup.get(f"/reports/casemix?by=queue&{WINDOW}")
    assert page.status_code == 200
    assert 'id="casemix-chart"' in page.text
    assert 'role="img"' in page.text
    assert '<tr data-group="inpt2">' in page.text
    assert "1.9425" in page.text
    capture = sup.get(f"/reports/cc-capture?by=coder&{WINDOW}")
    assert 'id="capture-chart"' in capture.text
    assert "66.7 %" in capture.text
    again = sup.get("/reports/cc-capture?by=patient")
    assert again.status_code == 422
    assert 'id="report-error"' in again.text
    assert 'id="capture-chart"' in again.text

    got = sup.get(f"/reports/casemix.csv?by=coder&{WINDOW}")
    assert got.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(got.text)))
    assert rows[0][2:] == [
        "group_by",
        "group",
        "stays",
        "weighted_stays",
        "cmi",
        "capture_stays",
        "captured",
        "capture_rate",
    ]
    assert [r[3:] for r in rows[1:]] == [
        ["cora", "3", "3", "1.2641", "3", "2", "66.7"],
        ["dev", "2", "1", "1.9289", "1", "1", "100.0"],
        ["all", "5", "4", "1.4303", "4", "3", "75.0"],
    ]
    coder = signed_in(make_client, "cody", "coder")
    for path in ("/api/v1/reports/casemix", "/reports/cc-capture", "/reports/drg-shifts.csv"):
        assert coder.get(path).status_code == 403


def test_submit_keeps_the_cc_mcc_counts_and_the_shifts_show_who_and_why(make_client):
    stay = {
        "class": "inpatient",
        "start": datetime(2026, 1, 10, 8, 0, tzinfo=UTC),
        "end": datetime(2026, 1, 14, 11, 0, tzinfo=UTC),
    }
    held = coder_with_item(make_client, "trainee", in_training=True, **stay)

    def put(*dx: str) -> None:
        body = {"diagnoses": [{"code": c, "poa": "Y"} for c in dx], "procedures": []}
        assert held.client.put(f"/api/v1/work/{held.item_id}/codes", json=body).status_code == 200

    put("I50.23")  # baseline 293
    put("I50.23", "N17.9")  # 292: one CC
    r = held.client.put(f"/api/v1/work/{held.item_id}/abstract", json={"discharge_status": "01"})
    assert r.status_code == 200
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").json()["status"] == "qa_review"
    with Session(get_engine()) as s:
        item = s.get(WorkItem, held.item_id)
        assert item is not None
        assert (item.final_drg, item.final_cc_count, item.final_mcc_count) == ("292", 1, 0)
    sup = signed_in(make_client, "qa-sue", "supervisor")
    corrected = {"diagnoses": [{"code": c, "poa": "Y"} for c in ("I50.23", "N17.9", "J96.01")]}
    reason = "Respiratory failure documented on day 2"
    r = sup.post(
        f"/api/v1/qa/{held.item_id}",
        json={
            "decision": "correct",
            "reason": reason,
            "codes": corrected,
            "findings": [{"category": "missed_cc_mcc"}],  # J96.01 added (issue 19 worksheet)
        },
    )
    assert r.status_code == 200, r.text

    body = sup.get("/api/v1/reports/drg-shifts").json()
    shifts = [(i["kind"], i["from_drg"], i["to_drg"], i["coder"], i["by"]) for i in body["items"]]
    assert sorted(shifts) == [
        ("final", "293", "292", "trainee", "trainee"),
        ("qa", "292", "291", "trainee", "qa-sue"),
    ]
    qa = next(i for i in body["items"] if i["kind"] == "qa")
    assert qa["weight_change"] == round(W291 - 0.849, 4)
    assert reason not in str(body)  # the reason is sealed: it opens only on request

    page = sup.get("/reports/drg-shifts")
    assert 'id="shifts-chart"' in page.text
    assert reason not in page.text
    assert f'hx-post="/reports/drg-shifts/{qa["review"]}/reason"' in page.text
    assert reason not in sup.get("/reports/drg-shifts.csv").text
    shown = sup.post(f"/reports/drg-shifts/{qa['review']}/reason")
    assert shown.status_code == 200
    assert reason in shown.text
    assert "no-store" in shown.headers["cache-control"]
    with Session(get_engine()) as s:
        looked = s.exec(
            select(AuditEvent).where(
                AuditEvent.actor == "qa-sue",
                AuditEvent.action == "view-record",
                col(AuditEvent.detail).contains("drg-shift reason"),
            )
        ).all()
        assert [(e.work_item_id, e.purpose, e.outcome) for e in looked] == [
            (held.item_id, "HOPERAT", "success")
        ]
    assert sup.post("/reports/drg-shifts/999999/reason").status_code == 404

    # The coder's own page: their QA results count final reviews only, so not before the
    # coder has answered the findings (agreeing makes them errors).
    mine = held.client.get("/reports/mine")
    table = mine.text.split('id="my-qa"')[1].split("</table>")[0]
    assert "No final QA review of your charts yet" in table
    assert 'href="/qa/mine"' in mine.text
    for finding in held.client.get("/api/v1/qa/findings").json()["items"]:
        answer = {"agree": True, "reason": ""}
        url = f"/api/v1/qa/findings/{finding['id']}/response"
        assert held.client.post(url, json=answer).status_code == 200
    mine = held.client.get("/reports/mine")
    table = mine.text.split('id="my-qa"')[1].split("</table>")[0]
    assert 'data-figure="reviewed">1<' in table
    assert 'data-figure="corrected">1<' in table
    assert 'data-figure="accuracy">0.0 %<' in table
    findings = mine.text.split('id="my-findings"')[1].split("</table>")[0]
    assert f'<tr data-item="{held.item_id}" data-outcome="corrected">' in findings
    assert "<td>292</td><td>291 <strong>(DRG shift)</strong>" in findings
    assert reason not in mine.text


def test_net_weight_change_of_shifts_without_a_weight_is_a_dash_not_zero(make_client, monkeypatch):
    """A shift whose DRGs have no weight (a grouper version without Table 5) is not a change
    of +0.0000: the net cell says it is not known."""
    stay = {
        "class": "inpatient",
        "start": datetime(2026, 1, 10, 8, 0, tzinfo=UTC),
        "end": datetime(2026, 1, 14, 11, 0, tzinfo=UTC),
    }
    held = coder_with_item(make_client, "nw-coder", **stay)
    for dx in (["I50.23"], ["I50.23", "N17.9"]):  # baseline 293, final 292
        body = {"diagnoses": [{"code": c, "poa": "Y"} for c in dx], "procedures": []}
        assert held.client.put(f"/api/v1/work/{held.item_id}/codes", json=body).status_code == 200
    r = held.client.put(f"/api/v1/work/{held.item_id}/abstract", json={"discharge_status": "01"})
    assert r.status_code == 200
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    sup = signed_in(make_client, "nw-sue", "supervisor")
    net = (
        'data-kind="final"><th scope="row">Baseline → final</th>'
        '<td data-figure="count">1</td><td data-figure="net">'
    )
    known = sup.get("/reports/drg-shifts").text.split(net)[1]
    assert known[0] in "+-"  # weights known: a signed number
    monkeypatch.setattr(casemix, "weight_of", lambda drg, version: None)
    assert net + "—</td>" in sup.get("/reports/drg-shifts").text


def test_shift_reasons_a_query_answer_opened_on_request_and_the_qa_categories(make_client):
    from tests.test_queries_api import PROVIDERS, _provider, _query

    stay = {
        "class": "inpatient",
        "start": datetime(2026, 1, 10, 8, 0, tzinfo=UTC),
        "end": datetime(2026, 1, 14, 11, 0, tzinfo=UTC),
        "providers": PROVIDERS,
    }
    held = coder_with_item(make_client, "trainee", in_training=True, **stay)
    coder, item_id = held.client, held.item_id

    def put(*dx: str) -> None:
        body = {"diagnoses": [{"code": c, "poa": "Y"} for c in dx], "procedures": []}
        assert coder.put(f"/api/v1/work/{item_id}/codes", json=body).status_code == 200

    put("I50.23")  # baseline 293
    chart = coder.get(f"/api/v1/work/{item_id}").json()
    r = coder.post(f"/api/v1/work/{item_id}/queries", json=_query(chart))
    assert r.status_code == 200, r.text
    qid = r.json()["id"]
    provider, account = _provider(make_client)
    answer = "Community-acquired pneumonia"
    r = provider.post(
        f"/api/v1/queries/{qid}/answer", json={"option": answer, "totp": fresh_totp(account)}
    )
    assert r.status_code == 200, r.text
    assert coder.post(f"/api/v1/work/{item_id}/resume").status_code == 200
    put("I50.23", "N17.9")  # 292 after the answer
    assert coder.put(f"/api/v1/work/{item_id}/abstract", json={"discharge_status": "01"})
    assert coder.post(f"/api/v1/work/{item_id}/submit").json()["status"] == "qa_review"
    sup = signed_in(make_client, "qa-sue", "supervisor")
    corrected = {"diagnoses": [{"code": c, "poa": "Y"} for c in ("I50.23", "N17.9", "J96.01")]}
    body = {"decision": "correct", "codes": corrected, "findings": [{"category": "missed_cc_mcc"}]}
    assert sup.post(f"/api/v1/qa/{item_id}", json=body).status_code == 200

    items = sup.get("/api/v1/reports/drg-shifts").json()["items"]
    final = next(i for i in items if i["kind"] == "final")
    qa = next(i for i in items if i["kind"] == "qa")
    assert final["query"] == qid
    assert final["why"] == f"Physician query #{qid} answered before submit"
    assert qa["why"].startswith("QA corrected: ")
    assert len(qa["why"]) > len("QA corrected: ")  # the category in words, in clear
    assert answer not in str(items)  # the answer is sealed: it opens only on request
    page = sup.get("/reports/drg-shifts")
    assert f'hx-post="/reports/drg-shifts/queries/{qid}/answer"' in page.text
    assert answer not in page.text
    assert answer not in sup.get("/reports/drg-shifts.csv").text
    shown = sup.post(f"/reports/drg-shifts/queries/{qid}/answer")
    assert shown.status_code == 200
    assert answer in shown.text
    assert f'id="answer-{qid}"' in shown.text
    assert "no-store" in shown.headers["cache-control"]
    assert sup.post("/reports/drg-shifts/queries/999999/answer").status_code == 404
    assert coder.post(f"/reports/drg-shifts/queries/{qid}/answer").status_code == 403
    with Session(get_engine()) as s:
        looked = s.exec(
            select(AuditEvent)
            .where(
                AuditEvent.actor == "qa-sue",
                AuditEvent.action == "view-record",
                col(AuditEvent.detail).contains("query="),
            )
            .order_by(col(AuditEvent.id))
        ).all()
        assert [(e.work_item_id, e.purpose, e.outcome) for e in looked] == [
            (item_id, "HOPERAT", "success"),
            (None, "HOPERAT", "denied"),
        ]
        assert looked[0].patient_id is not None


def test_productivity_shows_accuracy_and_case_mix(make_client):
    cora = make_user("cora", "coder").user_id
    boss = make_user("sue", "supervisor")
    now = datetime.now(UTC)
    one = _stay(coder=cora, queue="inpt", coded=now.isoformat()[:16], drg="291", mcc=1)
    two = _stay(coder=cora, queue="inpt", coded=now.isoformat()[:16], drg="293")
    from server.queue.items import record_event

    with Session(get_engine()) as s:
        for item_id in (one, two):
            for minutes, action, to_status in (
                (-30, "claim", Status.in_progress),
                (0, "submit", Status.qa_review),
            ):
                record_event(
                    s,
                    item_id=item_id,
                    actor_id=cora,
                    action=action,
                    from_status=Status.ready,
                    to_status=to_status,
                    owner_id=cora,
                    at=now + timedelta(minutes=minutes) - timedelta(hours=1),
                )
        s.add(
            QaReview(work_item_id=one, coder_id=cora, reviewer_id=boss.user_id, outcome="accepted")
        )
        s.add(
            QaReview(work_item_id=two, coder_id=cora, reviewer_id=boss.user_id, outcome="accepted")
        )
        s.add(
            QaReview(work_item_id=two, coder_id=cora, reviewer_id=boss.user_id, outcome="corrected")
        )
        s.commit()
    sup = make_client()
    sign_in(sup, boss)
    items = sup.get("/api/v1/reports/productivity").json()["items"]
    assert len(items) == 1
    # 2 of 3 reviews accepted; case-mix (1.2838 + 0.566) / 2.
    assert (items[0]["qa_reviewed"], items[0]["qa_accepted"], items[0]["accuracy_percent"]) == (
        3,
        2,
        66.7,
    )
    assert items[0]["case_mix"] == round((W291 + W293) / 2, 4)
    page = sup.get("/reports/productivity")
    assert "66.7 % of 3" in page.text
    assert "0.9249" in page.text


def test_standards_page_refuses_bad_input_in_place_and_audits_changes(make_client):
    sup = signed_in(make_client, "sue", "supervisor")
    csrf = sup.headers["X-CSRF-Token"]
    page = sup.get("/reports/standards")
    assert page.status_code == 200
    assert '<tr data-class="inpatient">' in page.text
    for typed in ("fast", "-2", "0", "61", "nan"):
        bad = sup.post(
            "/reports/standards",
            data={"csrf_token": csrf, "class": "emergency", "charts_per_hour": typed},
        )
        assert bad.status_code == 422, typed
        assert 'id="form-error"' in bad.text
        banner = bad.text.split('id="form-error">')[1].split("</div>")[0]
        assert banner == "A standard is a number of charts per hour above 0 and at most 60."
        field = bad.text.split('name="charts_per_hour"')[1].split(">")[0]
        assert f'value="{typed}"' in field
        assert 'aria-invalid="true"' in field
        assert 'id="err-charts_per_hour"' in bad.text
        assert '<option value="emergency" selected>' in bad.text
    with Session(get_engine()) as s:
        assert s.exec(select(ProductivityStandard)).all() == []
    ok = sup.post(
        "/reports/standards",
        data={"csrf_token": csrf, "class": "emergency", "charts_per_hour": "4.5"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert 'data-figure="standard">4.5<' in sup.get(ok.headers["location"]).text
    api = sup.put("/api/v1/reports/standards", json={"class": "inpatient", "charts_per_hour": -1})
    assert api.status_code == 422
    assert api.json()["error"]["details"][0]["loc"] == ["charts_per_hour"]
    wrong = sup.put("/api/v1/reports/standards", json={"class": "spa", "charts_per_hour": 2})
    assert wrong.json()["error"]["details"][0]["loc"] == ["class"]
    cleared = sup.put(
        "/api/v1/reports/standards", json={"class": "emergency", "charts_per_hour": None}
    )
    assert {i["class"]: i["charts_per_hour"] for i in cleared.json()["items"]}["emergency"] is None
    with Session(get_engine()) as s:
        changes = s.exec(
            select(AuditEvent.detail)
            .where(AuditEvent.action == "settings-admin")
            .order_by(col(AuditEvent.id))
        ).all()
    assert changes == [
        "productivity-standard class=emergency from=None to=4.5",
        "productivity-standard class=emergency from=4.5 to=None",
    ]
    coder = signed_in(make_client, "cody", "coder")
    assert coder.get("/reports/standards").status_code == 403


def test_identity_lookup_is_audited_and_refused_to_other_roles(make_client):
    held = coder_with_item(make_client, "ana")  # ana views her chart: its patient is logged
    held.client.get(f"/api/v1/work/{held.item_id}")
    with Session(get_engine()) as s:
        item = s.get(WorkItem, held.item_id)
        assert item is not None
        enc = s.get(Encounter, item.encounter_id)
        assert enc is not None
        patient_id = enc.patient_id
    officer = signed_in(make_client, "olga", "compliance")
    home = officer.get("/compliance")
    assert 'id="activity"' in home.text
    csrf = officer.headers["X-CSRF-Token"]
    results = officer.post("/compliance/search", data={"csrf_token": csrf, "actor": "ana"})
    assert 'hx-post="/compliance/identity/' in results.text
    assert "Show identity" in results.text

    shown = officer.post(f"/compliance/identity/{patient_id}")
    assert shown.status_code == 200
    assert "MRN MRN" in shown.text  # the factory's MRNs start with MRN
    assert "no-store" in shown.headers["cache-control"]
    sup = signed_in(make_client, "sue", "supervisor")
    assert sup.post(f"/compliance/identity/{patient_id}").status_code == 403
    assert officer.post("/compliance/identity/987654").status_code == 404
    with Session(get_engine()) as s:
        events = s.exec(
            select(AuditEvent)
            .where(
                col(AuditEvent.actor).in_(["olga", "sue"]),
                col(AuditEvent.action).in_(["identity-lookup", "access"]),
            )
            .order_by(col(AuditEvent.id))
        ).all()
        got = [(e.actor, e.action, e.outcome, e.patient_id, e.purpose) for e in events]
    assert got == [
        ("olga", "identity-lookup", "success", patient_id, "HCOMPL"),
        ("sue", "access", "denied", None, None),
        ("olga", "identity-lookup", "denied", 987654, "HCOMPL"),
    ]
    assert all(e.mrn_index is None or len(e.mrn_index) == 64 for e in events)


def test_identity_lookup_purpose_is_the_officers_pick_and_audited_with_it(make_client):
    held = coder_with_item(make_client, "ann")
    held.client.get(f"/api/v1/work/{held.item_id}")
    with Session(get_engine()) as s:
        item = s.get(WorkItem, held.item_id)
        assert item is not None
        enc = s.get(Encounter, item.encounter_id)
        assert enc is not None
        patient_id = enc.patient_id
    officer = signed_in(make_client, "otto", "compliance")
    csrf = officer.headers["X-CSRF-Token"]
    results = officer.post("/compliance/search", data={"csrf_token": csrf, "actor": "ann"})
    # One purpose picker above the table, HCOMPL chosen, every legend purpose offered; the
    # buttons send it with the lookup.
    assert '<select name="purpose" id="events-purpose">' in results.text
    assert '<option value="HCOMPL" selected>' in results.text
    assert '<option value="HOPERAT">' in results.text
    assert 'hx-include="#events-purpose"' in results.text
    assert officer.post(f"/compliance/identity/{patient_id}").status_code == 200
    picked = officer.post(f"/compliance/identity/{patient_id}", data={"purpose": "HOPERAT"})
    assert picked.status_code == 200
    assert "MRN MRN" in picked.text
    bad = officer.post(f"/compliance/identity/{patient_id}", data={"purpose": "MARKETING"})
    assert bad.status_code == 422
    assert "MRN MRN" not in bad.text
    assert "purpose" in bad.text
    with Session(get_engine()) as s:
        got = [
            (e.action, e.outcome, e.patient_id, e.purpose)
            for e in s.exec(
                select(AuditEvent)
                .where(AuditEvent.actor == "otto", AuditEvent.action == "identity-lookup")
                .order_by(col(AuditEvent.id))
            ).all()
        ]
    assert got == [
        ("identity-lookup", "success", patient_id, "HCOMPL"),
        ("identity-lookup", "success", patient_id, "HOPERAT"),
        ("identity-lookup", "failed", patient_id, None),
    ]


def test_activity_over_time_counts_views_refusals_and_break_glass(session):
    from server.audit import activity
    from server.audit import service as audit_service
    from server.auth.principal import system_principal

    now = datetime.now(UTC)
    tomorrow = now + timedelta(days=1)
    before, before_next = activity.activity(session), activity.activity(session, now=tomorrow)
    actor = system_principal("test")
    for action, outcome in (
        ("view-record", "success"),
        ("view-record", "success"),
        ("view-record", "denied"),
        ("emergency-access", "success"),
        ("emergency-access", "denied"),
        ("sign-in", "success"),
    ):
        audit_service.record(
            session,
            actor=actor,
            action=audit_service.Action(action),
            outcome=audit_service.Outcome(outcome),
        )
    session.commit()
    after, after_next = activity.activity(session), activity.activity(session, now=tomorrow)

    def delta(old: activity.Day, new: activity.Day) -> dict[str, int]:
        return {k: new.counts[k] - old.counts[k] for k in activity.KINDS}

    assert len(after.days) == 30
    # A denied break-glass is counted as break-glass; a denied view as a refusal.
    assert delta(before.days[-1], after.days[-1]) == {"views": 2, "refusals": 1, "break_glass": 2}
    # Seen from tomorrow, the same events are the day before's; tomorrow has none of them.
    assert delta(before_next.days[-2], after_next.days[-2]) == delta(
        before.days[-1], after.days[-1]
    )
    assert delta(before_next.days[-1], after_next.days[-1]) == dict.fromkeys(activity.KINDS, 0)


def test_default_window_is_twelve_months():
    since, until = casemix.default_window(datetime(2026, 11, 27, 12, tzinfo=UTC))
    assert since == datetime(2025, 12, 1, tzinfo=UTC)
    assert until == datetime(2026, 11, 28, tzinfo=UTC)


def test_the_item_history_says_lease_for_a_coder_taking_a_chart(make_client):
    held = coder_with_item(make_client, "ana")
    sup = signed_in(make_client, "sue", "supervisor")
    page = sup.get(f"/supervise/items/{held.item_id}")
    assert page.status_code == 200
    row = page.text.split('<tr data-action="claim">')[1].split("</tr>")[0]
    assert "lease" in row
    assert ">claim<" not in row
