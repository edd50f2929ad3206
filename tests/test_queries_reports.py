"""The physician query report: open queries by provider and age, answer turnaround."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from server.db import get_engine
from server.models import PhysicianQuery
from server.models.base import utcnow
from server.queries.reports import percentile
from tests.support.coding import coder_with_item
from tests.support.factories import make_user, sign_in

PROVIDERS = [
    {"npi": "1245319599", "name": "Dr. Ada Whitlock"},
    {"npi": "1003000126", "name": "=HYPERLINK(evil)"},  # a name from outside, for the CSV
]


def _ask(make_client, username: str, npi: str) -> int:
    held = coder_with_item(make_client, username, providers=PROVIDERS)
    doc = held.client.get(f"/api/v1/work/{held.item_id}").json()["documents"][0]
    r = held.client.post(
        f"/api/v1/work/{held.item_id}/queries",
        json={
            "template": "open_ended",
            "question": "What does the documented cough represent?",
            "indicators": [{"document": doc["id"], "start": 0, "end": 12}],
            "provider": npi,
        },
    )
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def test_percentile_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50) == 5
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90) == 9


def test_open_by_provider_and_age_and_turnaround(make_client):
    ids = [
        _ask(make_client, "c1", "1245319599"),
        _ask(make_client, "c2", "1245319599"),
        _ask(make_client, "c3", "1003000126"),
        _ask(make_client, "c4", "1003000126"),
        _ask(make_client, "c5", "1003000126"),
    ]
    now = utcnow()
    ages = {ids[0]: 1, ids[1]: 12, ids[2]: 4, ids[3]: 3, ids[4]: 2}
    with Session(get_engine()) as s:
        for qid, days in ages.items():
            q = s.get(PhysicianQuery, qid)
            assert q is not None
            q.created_at = now - timedelta(days=days, hours=1)
            if qid in (ids[3], ids[4]):  # answered after 10 h and 30 h
                q.status = "answered"
                q.answered_at = q.created_at + timedelta(hours=10 if qid == ids[3] else 30)
            s.add(q)
        s.commit()
    sup = make_client()
    sign_in(sup, make_user("sam", "supervisor"))
    report = sup.get("/api/v1/reports/queries").json()
    rows = {r["provider"]: r for r in report["open_by_provider"]}
    whit = rows["1245319599"]
    assert (whit["provider_name"], whit["open"]) == ("Dr. Ada Whitlock", 2)
    assert {b["label"]: b["count"] for b in whit["buckets"]} == {
        "0-2": 1,
        "3-5": 0,
        "6-10": 0,
        "11+": 1,
    }
    assert rows["1003000126"]["open"] == 1
    assert report["turnaround"] == {"answered": 2, "median_hours": 10.0, "p90_hours": 30.0}
    csv = sup.get("/reports/queries.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert "'=HYPERLINK(evil)" in csv.text  # formula-escaped
    assert "1245319599,Dr. Ada Whitlock,2,0,1,0,0,1" in csv.text
    page = sup.get("/reports/queries")
    assert page.status_code == 200
    assert "<svg" in page.text
    assert "Dr. Ada Whitlock" in page.text
    future = (now + timedelta(days=1)).isoformat()
    later = sup.get("/api/v1/reports/queries", params={"since": future}).json()
    assert later["turnaround"] == {"answered": 0, "median_hours": None, "p90_hours": None}
