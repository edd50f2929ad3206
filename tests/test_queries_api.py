"""Physician queries through the API: the whole loop, compliant wording, who sees what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from server.db import get_engine
from server.models import AuditEvent, PhysicianQuery, WorkItem
from server.queries import service as queries_service
from tests.support.coding import coder_with_item, signed_in
from tests.support.factories import Account, fresh_totp, make_user, sign_in

NPI = "1245319599"
OTHER_NPI = "1234567893"
PROVIDERS = [
    {"npi": NPI, "name": "Dr. Ada Whitlock", "role": "ATND"},
    {"npi": "1003000126", "name": "Dr. Ben Okafor"},
]
PASSAGE = "productive cough and low-grade fever"


def _indicator(chart: dict[str, Any], passage: str = PASSAGE) -> dict[str, Any]:
    doc = chart["documents"][0]
    start = doc["text"].index(passage)
    return {"document": doc["id"], "start": start, "end": start + len(passage)}


def _query(chart: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body = {
        "template": "multiple_choice",
        "question": "Based on the indicators below, what condition is being treated?",
        "options": [
            "Acute bronchitis",
            "Community-acquired pneumonia",
            "other",
            "clinically undetermined",
        ],
        "indicators": [_indicator(chart)],
        "provider": NPI,
    }
    body.update(overrides)
    return body


def _provider(make_client: Any, username: str = "drwhit", npi: str = NPI) -> tuple[Any, Account]:
    account = make_user(username, "provider", npi=npi)
    client = make_client()
    sign_in(client, account)
    return client, account


def _wrong_code(account: Account) -> str:
    """A six-digit code that is not valid now (none of the accepted time steps)."""
    import time

    import pyotp

    totp = pyotp.TOTP(account.totp_secret)
    step = int(time.time()) // totp.interval
    valid = {totp.generate_otp(step + d) for d in (-2, -1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def _events(item_id: int, action: str) -> list[AuditEvent]:
    with Session(get_engine()) as s:
        return list(
            s.exec(
                select(AuditEvent).where(
                    AuditEvent.work_item_id == item_id, AuditEvent.action == action
                )
            ).all()
        )


def test_the_whole_loop(make_client):
    held = coder_with_item(make_client, providers=PROVIDERS)
    coder, item_id = held.client, held.item_id
    chart = coder.get(f"/api/v1/work/{item_id}").json()
    assert chart["providers"][0] == {"npi": NPI, "name": "Dr. Ada Whitlock"}
    assert chart["queries"] == []

    r = coder.post(f"/api/v1/work/{item_id}/queries", json=_query(chart))
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["status"] == "open"
    assert created["item_status"] == "on_hold"
    qid = created["id"]
    mine = coder.get("/api/v1/work/mine").json()["items"]
    assert [(i["id"], i["status"], i["hold_reason"]) for i in mine] == [
        (item_id, "on_hold", "physician query")
    ]
    assert (
        _events(item_id, "query-create")[0].detail
        == f"query={qid} provider={NPI} template=multiple_choice"
    )

    provider, account = _provider(make_client)
    listed = provider.get("/api/v1/queries?status=open").json()
    assert [q["id"] for q in listed["items"]] == [qid]
    assert listed["items"][0]["provider_name"] == "Dr. Ada Whitlock"
    assert "question" not in listed["items"][0]  # lists carry nothing sealed
    q = provider.get(f"/api/v1/queries/{qid}").json()
    assert q["status"] == "open"
    assert q["question"].startswith("Based on the indicators")
    assert q["options"][-2:] == ["other", "clinically undetermined"]
    [ind] = q["indicators"]
    assert ind["quote"] == PASSAGE
    assert ind["document"] == chart["documents"][0]["id"]
    assert ind["date"] is not None
    assert q["answer"] is None
    assert set(q["patient"]) == {"name", "mrn"}  # who it is about, nothing else of the chart
    assert "documents" not in q
    assert "codes" not in q
    views = _events(item_id, "query-view")
    assert [(e.actor, e.outcome, e.purpose) for e in views] == [("drwhit", "success", "HOPERAT")]
    assert views[0].patient_id is not None

    r = provider.post(
        f"/api/v1/queries/{qid}/answer",
        json={"option": "Acute bronchitis", "totp": fresh_totp(account)},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "answered"
    assert r.json()["answer"]["option"] == "Acute bronchitis"
    assert r.json()["answer"]["answered_by"] == "drwhit"
    assert _events(item_id, "query-answer")[0].actor == "drwhit"
    again = provider.post(
        f"/api/v1/queries/{qid}/answer",
        json={"option": "other", "text": "x", "totp": fresh_totp(account)},
    )
    assert again.status_code == 409

    # Back in the coder's list, theirs; the answer is on the chart once resumed.
    mine = coder.get("/api/v1/work/mine").json()["items"]
    assert [(i["id"], i["status"]) for i in mine] == [(item_id, "returned")]
    assert coder.post(f"/api/v1/work/{item_id}/resume").status_code == 200
    chart = coder.get(f"/api/v1/work/{item_id}").json()
    [seen] = chart["queries"]
    assert seen["answer"]["option"] == "Acute bronchitis"
    assert seen["status"] == "answered"
    page = coder.get(f"/work/{item_id}")
    assert 'class="query-answer">Answer: <strong>Acute bronchitis</strong>' in page.text
    assert provider.get("/api/v1/queries?status=open").json()["items"] == []
    assert [q["id"] for q in provider.get("/api/v1/queries?status=answered").json()["items"]] == [
        qid
    ]


def test_open_ended_and_yes_no(make_client):
    held = coder_with_item(make_client, providers=PROVIDERS)
    chart = held.client.get(f"/api/v1/work/{held.item_id}").json()
    yes_no = _query(
        chart, template="yes_no", options=[], question="Was the fever present on admission?"
    )
    r = held.client.post(f"/api/v1/work/{held.item_id}/queries", json=yes_no)
    assert r.status_code == 422
    assert [d["loc"] for d in r.json()["error"]["details"]] == [["basis"]]
    r = held.client.post(f"/api/v1/work/{held.item_id}/queries", json={**yes_no, "basis": "poa"})
    assert r.status_code == 200, r.text
    provider, account = _provider(make_client)
    q = provider.get(f"/api/v1/queries/{r.json()['id']}").json()
    assert q["options"] == ["yes", "no", "clinically undetermined"]
    assert q["basis"] == "poa"
    r = provider.post(
        f"/api/v1/queries/{q['id']}/answer", json={"option": "maybe", "totp": fresh_totp(account)}
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["option"]
    r = provider.post(
        f"/api/v1/queries/{q['id']}/answer", json={"option": "YES", "totp": fresh_totp(account)}
    )
    assert r.json()["answer"]["option"] == "yes"


def test_an_open_ended_query_is_answered_in_text(make_client):
    held = coder_with_item(make_client, providers=PROVIDERS)
    chart = held.client.get(f"/api/v1/work/{held.item_id}").json()
    body = _query(
        chart, template="open_ended", options=[], question="What is the clinical significance?"
    )
    qid = held.client.post(f"/api/v1/work/{held.item_id}/queries", json=body).json()["id"]
    provider, account = _provider(make_client)
    r = provider.post(f"/api/v1/queries/{qid}/answer", json={"totp": fresh_totp(account)})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["text"]
    r = provider.post(
        f"/api/v1/queries/{qid}/answer",
        json={"text": "Acute bronchitis, viral.", "totp": fresh_totp(account)},
    )
    assert r.json()["answer"] == {
        "option": None,
        "text": "Acute bronchitis, viral.",
        "answered_at": r.json()["answer"]["answered_at"],
        "answered_by": "drwhit",
    }


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"indicators": []}, ["indicators"]),
        ({"options": ["Acute bronchitis", "Pneumonia", "clinically undetermined"]}, ["options"]),
        ({"options": ["Acute bronchitis", "Pneumonia", "other"]}, ["options"]),
        (
            {"options": ["Sepsis (raises the DRG)", "other", "clinically undetermined"]},
            ["options", 0],
        ),
        ({"question": "Please document acute bronchitis."}, ["question"]),
        ({"question": "Would you agree this is pneumonia?"}, ["question"]),
        ({"question": "Is this pneumonia, which improves reimbursement?"}, ["question"]),
        ({"provider": OTHER_NPI}, ["provider"]),
        ({"basis": "poa"}, ["basis"]),
        ({"template": "open_ended"}, ["options"]),
    ],
)
def test_non_compliant_queries_are_refused_at_the_field(make_client, change, loc):
    held = coder_with_item(make_client, providers=PROVIDERS)
    chart = held.client.get(f"/api/v1/work/{held.item_id}").json()
    r = held.client.post(f"/api/v1/work/{held.item_id}/queries", json=_query(chart, **change))
    assert r.status_code == 422, r.text
    assert loc in [d["loc"] for d in r.json()["error"]["details"]]
    # Nothing stored, nothing held.
    with Session(get_engine()) as s:
        assert s.exec(select(PhysicianQuery)).all() == []
        item = s.get(WorkItem, held.item_id)
        assert item is not None
        assert item.status == "in_progress"


def test_indicators_must_be_passages_of_this_chart(make_client):
    held = coder_with_item(make_client, providers=PROVIDERS)
    chart = held.client.get(f"/api/v1/work/{held.item_id}").json()
    doc = chart["documents"][0]
    bad = [
        {"document": doc["id"] + 1000, "start": 0, "end": 5},
        {"document": doc["id"], "start": 5, "end": len(doc["text"]) + 10},
        {"document": doc["id"], "quote": "words that are not in the note"},
        {"document": doc["id"], "quote": "scattered rhonchi"},  # fine: found verbatim
    ]
    r = held.client.post(f"/api/v1/work/{held.item_id}/queries", json=_query(chart, indicators=bad))
    assert r.status_code == 422
    assert [d["loc"] for d in r.json()["error"]["details"]] == [
        ["indicators", 0, "document"],
        ["indicators", 1, "end"],
        ["indicators", 2, "quote"],
    ]


def test_a_provider_sees_only_their_own_queries_and_never_the_chart(make_client):
    held = coder_with_item(make_client, providers=PROVIDERS)
    chart = held.client.get(f"/api/v1/work/{held.item_id}").json()
    qid = held.client.post(f"/api/v1/work/{held.item_id}/queries", json=_query(chart)).json()["id"]
    other, other_account = _provider(make_client, "drokafor", "1003000126")
    assert other.get("/api/v1/queries").json()["items"] == []
    assert other.get(f"/api/v1/queries?provider={NPI}").json()["items"] == []
    r = other.get(f"/api/v1/queries/{qid}")
    assert r.status_code == 404
    r = other.post(
        f"/api/v1/queries/{qid}/answer",
        json={"option": "other", "text": "x", "totp": fresh_totp(other_account)},
    )
    assert r.status_code == 404
    denied = [e for e in _events(held.item_id, "query-view") if e.outcome == "denied"]
    assert [e.actor for e in denied] == ["drokafor"]
    assert [e.outcome for e in _events(held.item_id, "query-answer")] == ["denied"]
    # The chart itself: not a provider's door at all (refused, audited).
    assert other.get(f"/api/v1/work/{held.item_id}").status_code == 403
    assert other.get(f"/work/{held.item_id}").status_code == 403
    with Session(get_engine()) as s:
        refused = s.exec(
            select(AuditEvent).where(AuditEvent.actor == "drokafor", AuditEvent.action == "access")
        ).all()
        assert len(refused) == 2
    # Another coder cannot read it either; the supervisor can (audited).
    other_coder = make_client()
    sign_in(other_coder, make_user("coder2", "coder", queues=["default"]))
    assert other_coder.get(f"/api/v1/queries/{qid}").status_code == 404
    assert held.client.get(f"/api/v1/queries/{qid}").status_code == 200


def test_the_answer_is_signed_with_a_current_code(make_client):
    held = coder_with_item(make_client, providers=PROVIDERS)
    chart = held.client.get(f"/api/v1/work/{held.item_id}").json()
    qid = held.client.post(f"/api/v1/work/{held.item_id}/queries", json=_query(chart)).json()["id"]
    provider, account = _provider(make_client)
    for totp in (None, _wrong_code(account)):
        r = provider.post(
            f"/api/v1/queries/{qid}/answer", json={"option": "other", "text": "x", "totp": totp}
        )
        assert r.status_code == 422
        assert r.json()["error"]["details"] == [
            {"loc": ["totp"], "msg": "not a current authenticator code"}
        ]
    with Session(get_engine()) as s:
        failed = s.exec(select(AuditEvent).where(AuditEvent.action == "sign-in-failed")).all()
        assert len(failed) == 2  # counted toward the lockout like a failed sign-in
        assert s.get(PhysicianQuery, qid).status == "open"  # type: ignore[union-attr]
    # Guessing on: the account locks (5 failures in a row), and then even a right code waits.
    for _ in range(3):
        provider.post(
            f"/api/v1/queries/{qid}/answer", json={"option": "other", "text": "x", "totp": "000000"}
        )
    r = provider.post(
        f"/api/v1/queries/{qid}/answer",
        json={"option": "other", "text": "x", "totp": fresh_totp(account)},
    )
    assert r.status_code == 429


def test_escalation_after_business_days(make_client, monkeypatch):
    monkeypatch.setenv("CHARTDESK_QUERY_ESCALATION_BUSINESS_DAYS", "2")
    from server.config import get_settings

    get_settings.cache_clear()
    held = coder_with_item(make_client, providers=PROVIDERS)
    chart = held.client.get(f"/api/v1/work/{held.item_id}").json()
    qid = held.client.post(f"/api/v1/work/{held.item_id}/queries", json=_query(chart)).json()["id"]
    friday = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    with Session(get_engine()) as s:
        q = s.get(PhysicianQuery, qid)
        assert q is not None
        q.created_at = friday
        s.add(q)
        s.commit()
    with Session(get_engine()) as s:
        # Monday: one business day. Tuesday 10:00: two.
        assert queries_service.escalate_overdue(s, now=friday + timedelta(days=3)) == []
        assert queries_service.escalate_overdue(s, now=friday + timedelta(days=4)) == [qid]
        assert queries_service.escalate_overdue(s, now=friday + timedelta(days=5)) == []
        s.commit()
    sup = make_client()
    sign_in(sup, make_user("sam", "supervisor"))
    escalated = sup.get("/api/v1/queries?status=escalated").json()["items"]
    assert [q["id"] for q in escalated] == [qid]
    assert _events(held.item_id, "query-escalate")[0].actor == "query-escalation"


def test_the_escalation_command(make_client):
    from typer.testing import CliRunner

    from server.cli import app as cli

    held = coder_with_item(make_client, providers=PROVIDERS)
    chart = held.client.get(f"/api/v1/work/{held.item_id}").json()
    qid = held.client.post(f"/api/v1/work/{held.item_id}/queries", json=_query(chart)).json()["id"]
    with Session(get_engine()) as s:
        q = s.get(PhysicianQuery, qid)
        assert q is not None
        q.created_at = q.created_at - timedelta(days=10)
        s.add(q)
        s.commit()
    r = CliRunner().invoke(cli, ["queries", "escalate"])
    assert r.exit_code == 0, r.output
    assert "escalated 1" in r.output


def test_a_coder_reads_their_query_only_while_the_chart_is_theirs(make_client):
    """A query quotes the chart and names the patient: no wider than the chart itself."""
    held = coder_with_item(make_client, providers=PROVIDERS)
    coder, item_id = held.client, held.item_id
    chart = coder.get(f"/api/v1/work/{item_id}").json()
    qid = coder.post(f"/api/v1/work/{item_id}/queries", json=_query(chart)).json()["id"]
    assert coder.get(f"/api/v1/queries/{qid}").status_code == 200  # on hold, in their list
    boss = signed_in(make_client, "boss", "supervisor")
    assert boss.get(f"/api/v1/queries/{qid}").status_code == 200  # open: to steer it
    # The chart goes to another coder: the first no longer reads the query.
    make_user("other", "coder", queues=["default"])
    r = boss.post(f"/api/v1/work/{item_id}/assign", json={"username": "other"})
    assert r.status_code == 200, r.text
    assert coder.get(f"/api/v1/queries/{qid}").status_code == 404
    refused = [e for e in _events(item_id, "query-view") if e.outcome == "denied"]
    assert refused
