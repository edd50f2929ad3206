"""Quality review: scores from final decisions, the coder's acknowledgement and rebuttal,
the supervisor's decision, bad input and who may see what."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session, select

from server.db import get_engine
from server.models import AuditEvent, QaFinding, QaReview, WorkItem
from tests.support.coding import GOOD_CODES, coder_with_item, signed_in
from tests.support.factories import make_encounter, make_user

# ---------------------------------------------------------------- scores, by hand


def _review(
    session: Session,
    *,
    coder_id: int,
    reviewer_id: int,
    at: datetime,
    codes: int,
    drg: tuple[str | None, str | None] = (None, None),
    findings: list[tuple[str, bool, str, str]] = (),  # type: ignore[assignment]
    queue: str = "default",
) -> None:
    """One scripted review: `findings` as (kind, principal, target, status)."""
    item_id = make_encounter(queue=queue)
    review = QaReview(
        work_item_id=item_id,
        coder_id=coder_id,
        reviewer_id=reviewer_id,
        outcome="corrected" if findings else "accepted",
        coder_drg=drg[0],
        qa_drg=drg[1],
        codes_reviewed=codes,
        at=at,
    )
    session.add(review)
    session.flush()
    assert review.id is not None
    for kind, principal, target, status in findings:
        session.add(
            QaFinding(
                review_id=review.id,
                work_item_id=item_id,
                coder_id=coder_id,
                reviewer_id=reviewer_id,
                kind=kind,
                target=target,
                principal=principal,
                category="specificity",
                taxonomy_version="test",
                sealed_detail=b"x",
                status=status,
                at=at,
            )
        )
    session.commit()


def _scripted() -> tuple[int, int]:
    ann = make_user("ann", "coder", queues=["default"]).user_id
    bob = make_user("bob", "coder", queues=["default"]).user_id
    rev = make_user("rita", "supervisor").user_id
    nov, oct_ = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 10, 15, tzinfo=UTC)
    with Session(get_engine()) as s:
        # R1 accepted: 4 codes, DRG stood.
        _review(s, coder_id=ann, reviewer_id=rev, at=nov, codes=4, drg=("292", "292"))
        # R2: principal changed (agreed) and a code added (agreed); DRG 292 -> 291.
        _review(
            s,
            coder_id=ann,
            reviewer_id=rev,
            at=nov,
            codes=5,
            drg=("292", "291"),
            findings=[
                ("principal_changed", True, "dx", "agreed"),
                ("added", False, "dx", "agreed"),
            ],
            queue="inpatient",
        )
        # R3: a revision the coder rebutted and a supervisor overturned: no error.
        _review(
            s,
            coder_id=ann,
            reviewer_id=rev,
            at=nov,
            codes=3,
            findings=[("revised", False, "dx", "overturned")],
        )
        # R4: still open: not counted at all.
        _review(
            s,
            coder_id=ann,
            reviewer_id=rev,
            at=nov,
            codes=2,
            findings=[("deleted", False, "dx", "open")],
        )
        # R5 (October): an abstract field upheld: a record error, not a code error.
        _review(
            s,
            coder_id=ann,
            reviewer_id=rev,
            at=oct_,
            codes=4,
            drg=("293", "293"),
            findings=[("abstract_changed", False, "abstract", "upheld")],
        )
        # Bob: one accepted chart.
        _review(s, coder_id=bob, reviewer_id=rev, at=nov, codes=2)
    return ann, bob


def test_scores_from_a_scripted_set_of_reviews_match_the_hand_figures(make_client):
    from server.qa import scores

    ann, _ = _scripted()
    with Session(get_engine()) as s:
        (all_of_ann,) = scores.scores(s, coder_id=ann)
        # Final reviews R1, R2, R3, R5 (R4 waits for the coder).
        assert all_of_ann.records_reviewed == 4
        assert all_of_ann.record_accuracy == 50.0  # R1, R3 clean of 4
        # Codes weighted (principal line x2): (4+1)+(5+1)+(3+1)+(4+1) = 20; errors: R2's
        # principal 2 + added 1 = 3 (R5's abstract field is not a code) -> 17/20.
        assert all_of_ann.code_accuracy == 85.0
        assert all_of_ann.principal_accuracy == 75.0  # R2's principal of 4
        assert all_of_ann.drg_accuracy == 66.7  # R1, R5 stood; R2 shifted: 2 of 3
        assert all_of_ann.by_category == {"specificity": 3}
        # November only: R1, R2, R3.
        (nov,) = scores.scores(s, coder_id=ann, since=date(2026, 11, 1))
        assert (nov.records_reviewed, nov.record_accuracy, nov.code_accuracy) == (3, 66.7, 80.0)
        assert (nov.principal_accuracy, nov.drg_accuracy) == (66.7, 50.0)
        by_month = {x.key: x.records_reviewed for x in scores.scores(s, by="month")}
        assert by_month == {"2026-10": 1, "2026-11": 4}  # Bob's chart in November too
        by_queue = {x.key: x.record_accuracy for x in scores.scores(s, by="queue")}
        assert by_queue == {"default": 75.0, "inpatient": 0.0}  # R1, R3, Bob of R1, R3, R5, Bob
        by_coder = {x.key: x.records_reviewed for x in scores.scores(s, by="coder")}
        assert by_coder == {"ann": 4, "bob": 1}
        # What sampling rules ask: record accuracy over the last N final reviews.
        assert scores.recent_accuracy(s, coder_id=ann, last=2) == 50.0  # R1..R3, newest first
        assert scores.recent_accuracy(s, coder_id=ann) == 50.0


def test_the_scores_api_page_and_csv(make_client):
    _scripted()
    sup = signed_in(make_client, "sam", "supervisor")
    r = sup.get("/api/v1/qa/scores", params={"coder": "ann", "since": "2026-11-01"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "coder": "ann",
        "records_reviewed": 3,
        "record_accuracy": 66.7,
        "code_accuracy": 80.0,
        "principal_accuracy": 66.7,
        "drg_accuracy": 50.0,
    }
    bad = sup.get("/api/v1/qa/scores", params={"since": "2026-12-01", "until": "2026-11-01"})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["loc"] == ["query", "since"]
    assert sup.get("/api/v1/qa/scores", params={"coder": "nobody"}).status_code == 404
    page = sup.get("/qa/scores", params={"by": "month"})
    assert page.status_code == 200
    assert "2026-10" in page.text
    assert 'id="scores-csv"' in page.text
    csv = sup.get("/qa/scores.csv", params={"by": "coder"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("group,key,records_reviewed,record_accuracy")
    assert lines[1].startswith("coder,ann,4,50.0,85.0,75.0,66.7")
    wrong = sup.get("/qa/scores", params={"by": "planet"})
    assert wrong.status_code == 422
    assert "Unknown grouping" in wrong.text
    # A coder gets their own scores only.
    bobs = signed_in(make_client, "carl", "coder")
    assert bobs.get("/api/v1/qa/scores", params={"coder": "ann"}).status_code == 403
    mine = bobs.get("/api/v1/qa/scores").json()
    assert mine["coder"] == "carl"
    assert mine["records_reviewed"] == 0
    assert mine["record_accuracy"] is None


# ---------------------------------------------------------------- the loop, through the API


def _reviewed(make_client: Any) -> tuple[Any, Any, int, list[dict[str, Any]]]:
    """A trainee's chart corrected by a supervisor with two findings."""
    held = coder_with_item(make_client, "trainee", in_training=True)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").json()["status"] == "qa_review"
    sup = signed_in(make_client, "sup1", "supervisor")
    corrected = {**GOOD_CODES, "diagnoses": [{"code": "E11.65"}, {"code": "I10"}]}
    body: dict[str, Any] = {"decision": "correct", "codes": corrected}
    # No categories: 422 naming each difference's field; nothing changed.
    r = sup.post(f"/api/v1/qa/{held.item_id}", json=body)
    assert r.status_code == 422
    assert [d["loc"] for d in r.json()["error"]["details"]] == [
        ["findings", 0, "category"],
        ["findings", 1, "category"],
    ]
    # A category the taxonomy does not list: 422 too.
    body["findings"] = [{"category": "specificity"}, {"category": "bad-luck"}]
    r = sup.post(f"/api/v1/qa/{held.item_id}", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["findings", 1, "category"]
    body["findings"] = [
        {"category": "specificity", "comment": "A1c 9.8 with hyperglycemia in the H&P"},
        {"category": "documentation_not_supported"},
    ]
    r = sup.post(f"/api/v1/qa/{held.item_id}", json=body)
    assert r.status_code == 200, r.text
    findings = held.client.get("/api/v1/qa/findings").json()["items"]
    return held, sup, held.item_id, findings


def test_corrected_codes_become_the_items_and_findings_keep_codes_sealed(make_client):
    from tests.support.coding import saved_codes

    held, _, item_id, findings = _reviewed(make_client)
    assert [(f["kind"], f["principal"], f["category"], f["status"]) for f in findings] == [
        ("deleted", False, "documentation_not_supported", "open"),
        ("principal_changed", True, "specificity", "open"),
    ]
    assert all("E11" not in str(f) for f in findings)  # no code in the list
    with Session(get_engine()) as s:
        assert [d.code for d in saved_codes(s, item_id).diagnoses] == ["E11.65", "I10"]
        for row in s.exec(select(QaFinding)).all():
            assert b"E11" not in row.sealed_detail
            assert b"H&P" not in row.sealed_detail
        review = s.exec(select(QaReview).where(QaReview.work_item_id == item_id)).one()
        assert review.codes_reviewed == 4  # 3 diagnoses + 1 procedure, nothing added
        # Each refused correction opened the coder's codes: audited as a failed attempt.
        decisions = s.exec(
            select(AuditEvent).where(
                AuditEvent.work_item_id == item_id, AuditEvent.action == "qa-decision"
            )
        ).all()
        assert sorted(e.outcome for e in decisions) == ["failed", "failed", "success"]


def test_the_coder_agrees_or_rebuts_and_a_second_supervisor_decides(make_client):
    held, sup, item_id, findings = _reviewed(make_client)
    deleted, principal = findings
    # The coder sees the finding's codes and the comment on the review page (audited).
    review_id = principal["review_id"]
    page = held.client.get(f"/qa/reviews/{review_id}")
    assert page.status_code == 200
    assert "E11.9" in page.text
    assert "E11.65" in page.text
    assert "A1c 9.8 with hyperglycemia in the H&amp;P" in page.text
    assert "My reviews" in held.client.get("/qa/mine").text
    # A rebuttal needs a reason.
    r = held.client.post(
        f"/api/v1/qa/findings/{principal['id']}/response", json={"agree": False, "reason": " "}
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["reason"]
    # On the page: the message once at the top (no field fragment run on), the field marked.
    r = held.client.post(
        f"/qa/findings/{principal['id']}/response",
        data={"agree": "false", "reason": " ", "csrf_token": held.client.headers["X-CSRF-Token"]},
    )
    assert r.status_code == 422
    top = r.text.split('id="form-error">')[1].split("</div>")[0]
    assert top == "Say why you disagree: the supervisor decides on your reason."
    assert 'aria-invalid="true"' in r.text
    assert f'data-page-url="/qa/reviews/{review_id}"' in r.text  # a reload lands on the review
    r = held.client.post(f"/api/v1/qa/findings/{deleted['id']}/response", json={"agree": True})
    assert r.json() == {"id": deleted["id"], "status": "agreed"}
    r = held.client.post(
        f"/api/v1/qa/findings/{principal['id']}/response",
        json={"agree": False, "reason": "The H&P says 'glucose normal'"},
    )
    assert r.json()["status"] == "rebutted"
    # Not final yet: the review is not counted.
    assert held.client.get("/api/v1/qa/scores").json()["records_reviewed"] == 0
    # The reviewer cannot judge their own finding; a second supervisor does, on the page.
    r = sup.post(
        f"/qa/findings/{principal['id']}/decision",
        data={"decision": "uphold", "csrf_token": sup.headers["X-CSRF-Token"]},
    )
    assert r.status_code == 403
    boss = signed_in(make_client, "boss", "supervisor")
    waiting = boss.get("/qa/scores").text
    assert f'id="rebuttal-{principal["id"]}"' in waiting
    assert f'href="/qa/reviews/{review_id}"' in waiting.split('id="recent-findings"')[1]
    r = boss.post(
        f"/qa/findings/{principal['id']}/decision",
        data={
            "decision": "overturn",
            "reason": "agree",
            "csrf_token": boss.headers["X-CSRF-Token"],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    # Final: a rebuttal after the decision is refused with the reason.
    r = held.client.post(
        f"/api/v1/qa/findings/{principal['id']}/response",
        json={"agree": False, "reason": "again"},
    )
    assert r.status_code == 422
    assert "decision is final" in r.json()["error"]["message"]
    mine = held.client.get("/api/v1/qa/findings", params={"status": "overturned"}).json()
    assert [f["id"] for f in mine["items"]] == [principal["id"]]
    # Counted now: the deleted code stands as an error, the principal change was overturned.
    score = held.client.get("/api/v1/qa/scores").json()
    assert score["records_reviewed"] == 1
    assert score["record_accuracy"] == 0.0
    assert score["principal_accuracy"] == 100.0
    assert score["code_accuracy"] == 80.0  # 1 error of 4 codes + the principal's weight 1
    with Session(get_engine()) as s:
        actions = [
            e.action
            for e in s.exec(select(AuditEvent).where(AuditEvent.work_item_id == item_id)).all()
        ]
        assert "qa-finding-view" in actions
        assert actions.count("qa-response") == 2
        decided = s.get(QaFinding, principal["id"])
        assert decided is not None
        assert decided.status == "overturned"
        assert decided.decided_by_id is not None
        assert decided.sealed_response is not None
        assert b"glucose" not in decided.sealed_response


def test_a_coder_sees_only_their_own_findings(make_client):
    _, _, _, findings = _reviewed(make_client)
    other = signed_in(make_client, "otto", "coder")
    assert other.get("/api/v1/qa/findings").json()["items"] == []
    r = other.get("/api/v1/qa/findings", params={"coder": "trainee"})
    assert r.status_code == 403
    assert "only their own" in r.json()["error"]["message"]
    r = other.post(f"/api/v1/qa/findings/{findings[0]['id']}/response", json={"agree": True})
    assert r.status_code == 404
    assert other.get(f"/qa/reviews/{findings[0]['review_id']}").status_code == 404
    bad = other.get("/api/v1/qa/findings", params={"status": "maybe"})
    assert bad.status_code == 422
    with Session(get_engine()) as s:
        refused = s.exec(
            select(AuditEvent).where(AuditEvent.actor == "otto", AuditEvent.outcome == "denied")
        ).all()
        assert {e.action for e in refused} == {"qa-response", "qa-finding-view"}


def test_a_reviewer_reviewing_their_own_chart_is_refused(make_client):
    item_id = make_encounter()
    from tests.support.factories import sign_in

    both = make_user("dual", "coder", "supervisor", queues=["default"])
    client = make_client()
    sign_in(client, both)
    sup = signed_in(make_client, "sam", "supervisor")
    assert sup.put("/api/v1/queues/default/qa-sample", json={"percent": 100}).status_code == 200
    assert client.post("/api/v1/work/next", json={}).json()["id"] == item_id
    client.put(f"/api/v1/work/{item_id}/codes", json=GOOD_CODES)
    assert client.post(f"/api/v1/work/{item_id}/submit").json()["status"] == "qa_review"
    r = client.post(f"/api/v1/qa/{item_id}", json={"decision": "accept"})
    assert r.status_code == 403
    assert "another reviewer" in r.json()["error"]["message"]
    page = client.get(f"/qa/{item_id}")  # the worksheet is refused too, with the reason
    assert page.status_code == 403
    assert "another reviewer" in page.text
    with Session(get_engine()) as s:
        item = s.get(WorkItem, item_id)
        assert item is not None
        assert item.status == "qa_review"
        assert s.exec(select(QaReview)).all() == []


def test_the_worksheet_page_preview_then_save(make_client):
    held = coder_with_item(make_client, "trainee", in_training=True)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    held.client.post(f"/api/v1/work/{held.item_id}/submit")
    sup = signed_in(make_client, "sup1", "supervisor")
    form = {
        "csrf_token": sup.headers["X-CSRF-Token"],
        "dx_code": ["E11.9", "I10", "J45.41"],
        "px_code": ["99213"],
        "px_system": ["CPT"],
        "px_modifiers": ["25"],
        "px_units": ["1"],
        "px_pointers": ["1 2"],
        "px_charge": ["125"],
    }
    r = sup.post(f"/qa/{held.item_id}", data={**form, "decision": "preview"})
    assert r.status_code == 200
    assert "code revised (diagnosis 3)" in r.text
    assert 'name="finding_key" value="revised:dx:3:"' in r.text
    r = sup.post(
        f"/qa/{held.item_id}",
        data={
            **form,
            "decision": "correct",
            "finding_key": ["revised:dx:3:"],
            "finding_category": ["specificity"],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    listed = held.client.get("/api/v1/qa/findings").json()["items"]
    assert [(f["kind"], f["position"], f["category"]) for f in listed] == [
        ("revised", 3, "specificity")
    ]


def test_the_coder_sees_the_findings_on_their_own_chart(make_client):
    held, _, item_id, findings = _reviewed(make_client)
    biller = signed_in(make_client, "bill", "biller")
    r = biller.post(f"/api/v1/billing/{item_id}/return", json={"reason": "check the modifier"})
    assert r.status_code == 200, r.text
    assert held.client.post(f"/api/v1/work/{item_id}/resume").status_code == 200
    page = held.client.get(f"/work/{item_id}")
    assert page.status_code == 200
    assert 'id="item-qa-findings"' in page.text
    assert f'id="item-finding-{findings[1]["id"]}"' in page.text
    assert "A1c 9.8 with hyperglycemia in the H&amp;P" in page.text
    assert f'href="/qa/reviews/{findings[0]["review_id"]}"' in page.text


def test_sampling_reads_the_coders_accuracy_from_final_reviews(make_client):
    from server.qa import sampling

    ann, bob = _scripted()
    with Session(get_engine()) as s:
        # R4 waits for the coder: left out; R3's overturned finding leaves it clean.
        assert sampling.recent_accuracy(s, coder_id=ann, n=10) == sampling.Recent(4, 2)
        assert sampling.recent_accuracy(s, coder_id=ann, n=1) == sampling.Recent(1, 1)  # R3
        assert sampling.recent_accuracy(s, coder_id=bob, n=0) == sampling.Recent(0, 0)
