"""QA sampling rules of a queue: new coders, targeted rules, random, adaptive; the settings
page and API. The random draw is injected, so each decision is deterministic here."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from server.auth.principal import system_principal
from server.models import (
    AuditEvent,
    ClaimReturn,
    QaReview,
    QaSampleRule,
    QaSampling,
    Queue,
    User,
    WorkItem,
    WorkItemEvent,
)
from server.models.base import utcnow
from server.qa import sampling
from tests.support.coding import GOOD_CODES, coder_with_item, signed_in
from tests.support.factories import make_encounter, make_user

ACTOR = system_principal("test")


class Draw:
    """An RNG whose every draw is `value` (in [0, 1))."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def _settings(**changes: Any) -> sampling.SettingsIn:
    base: dict[str, Any] = {
        "random_percent": 0,
        "new_coder_charts": 0,
        "target_accuracy": 95,
        "adaptive": False,
        "base_percent": 10.0,
        "k_accuracy": 2.0,
        "k_denial": 1.0,
        "floor_percent": 5,
        "ceiling_percent": 40,
        "review_window": 10,
    }
    return sampling.SettingsIn(**{**base, **changes})


def _save(session: Session, **changes: Any) -> int:
    sampling.save_settings(session, actor=ACTOR, queue_name="default", given=_settings(**changes))
    queue = session.exec(select(Queue).where(Queue.name == "default")).one()
    session.commit()  # SQLite: let other connections write
    assert queue.id is not None
    return queue.id


def _rules(session: Session, *rules: tuple[str, str] | tuple[str, str, int]) -> None:
    given = [sampling.RuleIn(*r) for r in rules]
    sampling.replace_rules(session, actor=ACTOR, queue_name="default", rules=given)
    session.commit()


def _reviews(session: Session, coder_id: int, item_id: int, outcomes: str) -> None:
    """QA reviews of the coder, oldest first: `a` accepted, `c` corrected."""
    reviewer = session.exec(select(User).where(User.username == "reviewer")).one()
    assert reviewer.id is not None
    reviewer_id = reviewer.id
    last = session.exec(select(QaReview).order_by(QaReview.at.desc())).first()  # type: ignore[attr-defined]
    start = (last.at if last else utcnow() - timedelta(days=30)) + timedelta(minutes=1)
    for n, o in enumerate(outcomes):
        session.add(
            QaReview(
                work_item_id=item_id,
                coder_id=coder_id,
                reviewer_id=reviewer_id,
                outcome="accepted" if o == "a" else "corrected",
                at=start + timedelta(minutes=n),
            )
        )
    session.commit()


def _decide(session: Session, coder_id: int, draw: float = 0.99, **facts: Any) -> Any:
    queue = session.exec(select(Queue).where(Queue.name == "default")).one()
    assert queue.id is not None
    decision = sampling.decide(
        session,
        queue_id=queue.id,
        coder_id=coder_id,
        facts=sampling.Facts(**facts),
        rng=Draw(draw),
    )
    session.commit()  # SQLite: let other connections write
    return decision


@pytest.fixture
def coder(session: Session) -> tuple[int, int]:
    """A coder of the default queue and an item their reviews can point at."""
    item_id = make_encounter()
    make_user("reviewer", "supervisor")
    return make_user("ana", "coder", queues=["default"]).user_id, item_id


# ---------------------------------------------------------------- each rule kind


def test_no_settings_samples_nothing_but_trainees(session: Session, coder) -> None:
    coder_id, _ = coder
    assert _decide(session, coder_id, draw=0.0) == sampling.Decision(False, None)
    user = session.get(User, coder_id)
    assert user is not None
    user.in_training = True
    session.add(user)
    session.commit()
    assert _decide(session, coder_id).reason == "QA sample: coder in training"


def test_new_coder_rule_lifts_after_n_good_reviews(session: Session, coder) -> None:
    coder_id, item_id = coder
    _save(session, new_coder_charts=3, target_accuracy=90)
    first = _decide(session, coder_id)
    assert first.sampled
    assert first.reason == "QA sample: new coder (0 of 3 reviews, target 90%)"
    _reviews(session, coder_id, item_id, "aa")
    assert _decide(session, coder_id).reason == "QA sample: new coder (2 of 3 reviews, target 90%)"
    _reviews(session, coder_id, item_id, "a")
    assert _decide(session, coder_id) == sampling.Decision(False, None)  # lifted
    # Their last three reviews fall below the target: every chart again until they recover.
    _reviews(session, coder_id, item_id, "c")
    assert _decide(session, coder_id).sampled
    _reviews(session, coder_id, item_id, "aaa")
    assert not _decide(session, coder_id).sampled


@pytest.mark.parametrize(
    ("rule", "matching", "other"),
    [
        (("drg", "291"), {"drg": "291", "mdc": "05"}, {"drg": "292", "mdc": "05"}),
        (("mdc", "5"), {"drg": "292", "mdc": "05"}, {"drg": "193", "mdc": "04"}),
        (("code", "i50"), {"diagnoses": ("I50.23", "N17.9")}, {"diagnoses": ("I10",)}),
        (("code", "99215"), {"procedures": ("99215",)}, {"procedures": ("99213",)}),
        (("payer_class", "Medicare"), {"payer_class": "medicare"}, {"payer_class": "commercial"}),
        (("charge_over", "$25,000"), {"charge": 25000.01}, {"charge": 25000.0}),
    ],
)
def test_targeted_rule_samples_matching_charts(
    session: Session, coder, rule: tuple[str, str], matching: dict, other: dict
) -> None:
    coder_id, _ = coder
    _rules(session, rule)
    found = _decide(session, coder_id, **matching)
    assert found.sampled
    assert found.reason.startswith("QA sample: targeted rule #")
    assert not _decide(session, coder_id, **other).sampled


def test_targeted_rule_by_coder_and_by_share(session: Session, coder) -> None:
    coder_id, _ = coder
    other_id = make_user("ben", "coder", queues=["default"]).user_id
    _rules(session, ("coder", "ana", 30))
    assert _decide(session, coder_id, draw=0.29).sampled  # 29 < 30
    assert not _decide(session, coder_id, draw=0.30).sampled
    assert not _decide(session, other_id, draw=0.0).sampled
    assert _decide(session, coder_id, draw=0.0).reason.endswith("(coder ana, 30%)")


def test_code_rule_reason_does_not_name_the_code(session: Session, coder) -> None:
    coder_id, _ = coder
    _rules(session, ("code", "E11.9"))
    reason = _decide(session, coder_id, diagnoses=("E11.9",)).reason
    assert reason.endswith("(code)")
    assert "E11" not in reason


def test_random_percentage_uses_the_injected_draw(session: Session, coder) -> None:
    coder_id, _ = coder
    _save(session, random_percent=10)
    assert _decide(session, coder_id, draw=0.0999).reason == "QA sample: random 10%"
    assert not _decide(session, coder_id, draw=0.10).sampled


# ---------------------------------------------------------------- rule order


def test_first_matching_rule_decides_in_order(session: Session, coder) -> None:
    coder_id, item_id = coder
    _save(session, new_coder_charts=1, target_accuracy=90, random_percent=20, adaptive=True)
    _rules(session, ("payer_class", "medicare"), ("drg", "291"))
    chart = {"payer_class": "medicare", "drg": "291", "mdc": "05"}
    assert "new coder" in _decide(session, coder_id, draw=0.0, **chart).reason
    # The last review is good (the new-coder rule lifts), three before it were not: 25%
    # accuracy puts the adaptive rate at its ceiling (40%).
    _reviews(session, coder_id, item_id, "ccca")
    assert "(payer class medicare)" in _decide(session, coder_id, draw=0.0, **chart).reason
    _rules(session, ("drg", "291"), ("payer_class", "medicare"))
    assert "(MS-DRG 291)" in _decide(session, coder_id, draw=0.0, **chart).reason
    # No targeted rule matches: random (20%) before adaptive (40%).
    assert _decide(session, coder_id, draw=0.0).reason == "QA sample: random 20%"
    assert _decide(session, coder_id, draw=0.3).reason.startswith("QA sample: adaptive 40.0%")
    assert not _decide(session, coder_id, draw=0.45).sampled


def test_adaptive_rule_samples_below_the_coders_rate(session: Session, coder) -> None:
    coder_id, item_id = coder
    _save(session, adaptive=True)
    _reviews(session, coder_id, item_id, "aaaaaaacc")  # 7 of 9: rate 10 + 2*(95-77.8)
    rate = sampling.adaptive_rate(
        session, settings=sampling.settings_for(session, queue_id=1), coder_id=coder_id
    )
    assert rate.rate == 40  # the ceiling
    found = _decide(session, coder_id, draw=0.39)
    assert found.reason == "QA sample: adaptive 40.0% (accuracy 77.8%, denials 0.0%)"
    assert not _decide(session, coder_id, draw=0.40).sampled


# ---------------------------------------------------------------- adaptive rate


def _rate(session: Session, queue_id: int, coder_id: int) -> float:
    settings = sampling.settings_for(session, queue_id=queue_id)
    return sampling.adaptive_rate(session, settings=settings, coder_id=coder_id).rate


def test_adaptive_rate_rises_after_errors_and_falls_after_a_clean_streak(
    session: Session, coder
) -> None:
    coder_id, item_id = coder
    queue_id = _save(
        session, adaptive=True, base_percent=10, k_accuracy=2, floor_percent=5, ceiling_percent=40
    )
    assert _rate(session, queue_id, coder_id) == 10  # no reviews: taken at target
    _reviews(session, coder_id, item_id, "aaaaaaaaac")  # 90%: 10 + 2 * 5
    after_one = _rate(session, queue_id, coder_id)
    assert after_one == 20
    _reviews(session, coder_id, item_id, "c")  # 80% over the last 10: 10 + 2 * 15
    assert _rate(session, queue_id, coder_id) == 40
    _reviews(session, coder_id, item_id, "cc")  # 60%: 80 by the formula, held at the ceiling
    assert _rate(session, queue_id, coder_id) == 40
    _reviews(session, coder_id, item_id, "aaaaaa")  # 60% over the last 10: the ceiling
    assert _rate(session, queue_id, coder_id) == 40
    _reviews(session, coder_id, item_id, "aaa")  # 90%
    assert _rate(session, queue_id, coder_id) == 20
    _reviews(session, coder_id, item_id, "a")  # ten clean: 10 + 2 * (95 - 100) = 0 -> floor
    assert _rate(session, queue_id, coder_id) == 5


def test_adaptive_rate_follows_the_denial_rate(session: Session, coder) -> None:
    coder_id, _ = coder
    items = [make_encounter() for _ in range(4)]
    queue_id = _save(session, adaptive=True, k_denial=0.5)
    for n, item_id in enumerate(items):
        item = session.get(WorkItem, item_id)
        assert item is not None
        item.coded_by_id, item.coded_at = coder_id, utcnow() - timedelta(hours=n)
        session.add(item)
    session.add(
        ClaimReturn(work_item_id=items[0], coder_id=coder_id, sealed_reason=b"x", returned_by="b")
    )
    session.commit()
    assert sampling.denial_rate(session, coder_id=coder_id, n=10) == sampling.Denials(4, 1)
    assert _rate(session, queue_id, coder_id) == 10 + 0.5 * 25


# ---------------------------------------------------------------- through submit


def test_submit_records_which_rule_sent_the_chart_to_qa(make_client, session: Session) -> None:
    sup = signed_in(make_client, "sup1", "supervisor")
    body = {"random_percent": 0, "rules": [{"kind": "code", "value": "J45.909"}]}
    r = sup.put("/api/v1/queues/default/qa-sampling", json=body)
    assert r.status_code == 200, r.text
    rule_id = r.json()["rules"][0]["id"]
    held = coder_with_item(make_client)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.json()["status"] == "qa_review"
    event = session.exec(
        select(WorkItemEvent).where(
            WorkItemEvent.work_item_id == held.item_id, WorkItemEvent.action == "submit"
        )
    ).one()
    assert event.reason == f"QA sample: targeted rule #{rule_id} (code)"
    session.commit()
    history = sup.get(f"/supervise/items/{held.item_id}")
    assert f"targeted rule #{rule_id}" in history.text


def test_submit_checks_the_stays_drg_and_mdc(make_client) -> None:
    from datetime import UTC, datetime

    sup = signed_in(make_client, "sup1", "supervisor")
    body = {
        "random_percent": 0,
        "rules": [{"kind": "drg", "value": "291"}, {"kind": "mdc", "value": "05"}],
    }
    assert sup.put("/api/v1/queues/default/qa-sampling", json=body).status_code == 200
    stay = {
        "class": "inpatient",
        "start": datetime(2026, 1, 10, 8, 0, tzinfo=UTC),
        "end": datetime(2026, 1, 14, 11, 0, tzinfo=UTC),
    }
    held = coder_with_item(make_client, **stay)
    codes = {"diagnoses": [{"code": "I50.23", "poa": "Y"}, {"code": "N17.9", "poa": "Y"}]}
    assert held.client.put(f"/api/v1/work/{held.item_id}/codes", json=codes).status_code == 200
    r = held.client.put(f"/api/v1/work/{held.item_id}/abstract", json={"discharge_status": "01"})
    assert r.status_code == 200, r.text
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")
    assert r.json()["status"] == "qa_review"  # DRG 292, MDC 05: the second rule
    page = sup.get(f"/supervise/items/{held.item_id}").text
    assert "(MDC 05)" in page
    assert "(MS-DRG 291)" not in page


def test_submit_goes_to_billing_when_no_rule_matches(make_client, session: Session) -> None:
    sup = signed_in(make_client, "sup1", "supervisor")
    body = {"random_percent": 0, "rules": [{"kind": "payer_class", "value": "medicare"}]}
    assert sup.put("/api/v1/queues/default/qa-sampling", json=body).status_code == 200
    held = coder_with_item(make_client)  # a commercial payer
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").json()["status"] == (
        "ready_for_billing"
    )


def test_random_share_at_submit_draws_from_the_module_rng(
    make_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    sup = signed_in(make_client, "sup1", "supervisor")
    assert sup.put("/api/v1/queues/default/qa-sample", json={"percent": 20}).status_code == 200
    monkeypatch.setattr(sampling, "RNG", Draw(0.19))
    held = coder_with_item(make_client)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").json()["status"] == "qa_review"


# ---------------------------------------------------------------- settings: API and page


def test_api_answers_the_formula_and_each_coders_rate(make_client) -> None:
    make_user("ana", "coder", queues=["default"])
    sup = signed_in(make_client, "sup1", "supervisor")
    body = {"random_percent": 5, "adaptive": True, "base_percent": 12}
    assert sup.put("/api/v1/queues/default/qa-sampling", json=body).status_code == 200
    got = sup.get("/api/v1/queues/default/qa-sampling").json()
    assert got["formula"] == sampling.FORMULA
    assert got["random_percent"] == 5
    assert got["coders"] == [
        {
            "coder": "ana",
            "rate": 12.0,
            "accuracy": None,
            "reviewed": 0,
            "denial_rate": 0.0,
            "coded": 0,
        }
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"random_percent": 101}, "random_percent"),
        ({"target_accuracy": -1}, "target_accuracy"),
        ({"floor_percent": 60, "ceiling_percent": 40}, "floor_percent"),
        ({"rules": [{"kind": "drg", "value": "000"}]}, "value"),
        ({"rules": [{"kind": "mdc", "value": "26"}]}, "value"),
        ({"rules": [{"kind": "code", "value": "ZZZ.9"}]}, "value"),
        ({"rules": [{"kind": "coder", "value": "nobody"}]}, "value"),
        ({"rules": [{"kind": "colour", "value": "red"}]}, "kind"),
        ({"rules": [{"kind": "drg", "value": "291", "percent": 150}]}, "percent"),
    ],
)
def test_api_refuses_bad_settings_and_changes_nothing(
    make_client, change: dict, field: str
) -> None:
    sup = signed_in(make_client, "sup1", "supervisor")
    good = {"random_percent": 7, "rules": [{"kind": "drg", "value": "291"}]}
    assert sup.put("/api/v1/queues/default/qa-sampling", json=good).status_code == 200
    r = sup.put("/api/v1/queues/default/qa-sampling", json={**good, **change})
    assert r.status_code == 422, r.text
    assert field in [d["loc"][-1] for d in r.json()["error"]["details"]]
    after = sup.get("/api/v1/queues/default/qa-sampling").json()
    assert after["random_percent"] == 7
    assert [(x["kind"], x["value"]) for x in after["rules"]] == [("drg", "291")]


PAGE_FORM = {
    "random_percent": "10",
    "new_coder_charts": "5",
    "target_accuracy": "95",
    "adaptive": "true",
    "base_percent": "10",
    "k_accuracy": "2",
    "k_denial": "1",
    "floor_percent": "5",
    "ceiling_percent": "50",
    "review_window": "20",
}


def test_settings_page_saves_and_audits(make_client, session: Session) -> None:
    make_user("ana", "coder", queues=["default"])
    sup = signed_in(make_client, "sup1", "supervisor")
    csrf = sup.headers["X-CSRF-Token"]
    r = sup.post(
        "/qa/queues/default/sampling",
        data={**PAGE_FORM, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = sup.post(
        "/qa/queues/default/sampling/rules",
        data={"kind": "drg", "value": "291", "percent": "100", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = sup.get("/qa/queues/default/sampling")
    assert page.status_code == 200
    assert "rate = clamp(10.0 + 2.0 × (95 − accuracy) + 1.0 × denial rate, 5, 50)" in page.text
    assert 'id="rate-ana"' in page.text
    assert "<code>291</code>" in page.text
    row = session.get(QaSampling, 1)
    assert row is not None
    assert (row.new_coder_charts, row.adaptive, row.ceiling_percent) == (5, True, 50)
    details = session.exec(
        select(AuditEvent.detail).where(AuditEvent.action == "queue-admin")
    ).all()
    assert any(d and d.startswith("qa-sampling queue=1 random=10") for d in details)
    assert any(d and "rule=" in d and "added kind=drg" in d for d in details)
    session.commit()
    r = sup.post(
        "/qa/queues/default/sampling/rules",
        data={"kind": "payer_class", "value": "medicare", "percent": "50", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    second = session.exec(select(QaSampleRule).where(QaSampleRule.kind == "payer_class")).one()
    session.commit()
    r = sup.post(
        f"/qa/queues/default/sampling/rules/{second.id}/up",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    session.expire_all()
    assert [x.kind for x in sampling.rules_for(session, queue_id=1)] == ["payer_class", "drg"]
    session.delete(second)
    rule = session.exec(select(QaSampleRule)).one()
    session.commit()
    r = sup.post(
        f"/qa/queues/default/sampling/rules/{rule.id}/delete",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    session.expire_all()
    assert session.exec(select(QaSampleRule)).all() == []


def test_settings_page_shows_the_error_at_the_field_with_the_input_kept(
    make_client, session: Session
) -> None:
    sup = signed_in(make_client, "sup1", "supervisor")
    csrf = sup.headers["X-CSRF-Token"]
    bad = {**PAGE_FORM, "floor_percent": "60", "ceiling_percent": "40", "random_percent": "33"}
    r = sup.post("/qa/queues/default/sampling", data={**bad, "csrf_token": csrf})
    assert r.status_code == 422
    assert 'id="err-floor_percent"' in r.text
    assert "The floor must not be above the ceiling." in r.text
    assert 'name="floor_percent"' in r.text
    assert 'value="60" aria-invalid="true"' in r.text
    assert 'value="33"' in r.text  # what was typed, not what is stored
    r = sup.post(
        "/qa/queues/default/sampling", data={**PAGE_FORM, "k_denial": "lots", "csrf_token": csrf}
    )
    assert r.status_code == 422
    assert 'id="err-k_denial"' in r.text
    assert session.get(QaSampling, 1) is None  # nothing saved
    session.commit()
    r = sup.post(
        "/qa/queues/default/sampling/rules",
        data={"kind": "drg", "value": "000", "percent": "100", "csrf_token": csrf},
    )
    assert r.status_code == 422
    assert 'id="err-value"' in r.text
    assert "000 is not an MS-DRG of CMS Table 5." in r.text
    assert 'value="000" aria-invalid="true"' in r.text
    assert session.exec(select(QaSampleRule)).all() == []
