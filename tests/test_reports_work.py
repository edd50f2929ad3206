"""Holds by reason and age, overdue items and throughput, against hand-computed figures."""

from __future__ import annotations

import csv
import io

from sqlmodel import Session

from server.config import get_settings
from server.db import get_engine
from server.models import Status, WorkItem
from server.reports import work
from tests.support.factories import make_user, sign_in
from tests.test_reports import AS_OF, _at, _events, _item

IP, RD, HOLD, QA = Status.in_progress, Status.ready, Status.on_hold, Status.ready_for_billing


def _set(item_id: int, **values: object) -> None:
    with Session(get_engine()) as s:
        item = s.get(WorkItem, item_id)
        assert item is not None
        for key, value in values.items():
            setattr(item, key, value)
        s.add(item)
        s.commit()


def _held(reason: str, *holds: str) -> int:
    """An item on hold for `reason`, put on hold at each of `holds` (resumed in between)."""
    item_id = _item()
    steps = []
    for at in holds:
        steps += [(at, None, "hold", HOLD, None), (at, None, "resume", IP, None)]
    _events(item_id, *steps[:-1])
    _set(item_id, status=Status.on_hold, hold_reason=reason)
    return item_id


def test_holds_by_reason_and_days_on_hold_and_overdue_by_queue(session):
    q = "physician query"
    _held(q, "2026-11-27T09:00")  # 0 days -> 0-1
    _held(q, "2026-11-26T23:00")  # 1 -> 0-1
    _held(q, "2026-11-24T12:00")  # 3 -> 2-3
    _held("missing documentation", "2026-11-20T12:00")  # 7 -> 4-7
    _held(q, "2026-11-01T12:00")  # 26 -> 8+
    _held(q, "2026-11-01T12:00", "2026-11-25T12:00")  # the last hold counts: 2 -> 2-3
    resumed = _held(q, "2026-11-02T12:00")
    _set(resumed, status=Status.ready, hold_reason=None)  # no longer held: not counted
    # Overdue: open items whose due date has passed.
    _set(_item(), due_at=_at("2026-11-25T12:00"))  # 2 days
    _set(_item(), due_at=_at("2026-11-20T08:00"), status=Status.in_progress)  # 7 days
    _set(_item(queue="inpt"), due_at=_at("2026-11-27T14:00"))  # an hour ago: 0 days
    _set(_item(), due_at=_at("2026-11-10T08:00"), status=Status.billed)  # done
    _set(_item(), due_at=_at("2026-11-10T08:00"), status=Status.ready_for_billing)  # coded
    _set(_item(), due_at=_at("2026-11-28T08:00"))  # not yet due

    report = work.work_in_hand(session, as_of=AS_OF)
    assert {r.reason: r.counts for r in report.holds} == {
        "missing documentation": {"0-1": 0, "2-3": 0, "4-7": 1, "8+": 0},
        "physician query": {"0-1": 2, "2-3": 2, "4-7": 0, "8+": 1},
    }
    assert report.held == 6
    assert [(o.queue, o.count, o.oldest_days) for o in report.overdue] == [
        ("default", 2, 7),
        ("inpt", 1, 0),
    ]


def test_throughput_per_local_day_and_class(session, monkeypatch):
    cora = make_user("cora", "coder").user_id
    for at, klass in [
        ("2026-11-27T09:00", "outpatient"),
        ("2026-11-27T10:00", "outpatient"),
        ("2026-11-27T11:00", "inpatient"),
        ("2026-11-26T23:30", "outpatient"),
        ("2026-10-29T12:00", "inpatient"),  # the first of the 30 days
        ("2026-10-28T12:00", "inpatient"),  # 31 days ago: outside
        ("2026-11-27T16:00", "inpatient"),  # after as_of, still today
    ]:
        item_id = _item(klass=klass)
        _events(item_id, (at, cora, "claim", IP, cora), (at, cora, "submit", QA, None))
    report = work.throughput(session, as_of=AS_OF)
    assert len(report.days) == 30
    assert report.days[0].day.isoformat() == "2026-10-29"
    assert report.days[-1].day.isoformat() == "2026-11-27"
    by_day = {d.day.isoformat(): d.by_class for d in report.days if d.total}
    assert by_day == {
        "2026-10-29": {"inpatient": 1},
        "2026-11-26": {"outpatient": 1},
        "2026-11-27": {"outpatient": 2, "inpatient": 2},
    }
    assert report.classes == ["inpatient", "outpatient"]
    # In New York (10:00 EST at AS_OF) the day runs 05:00-05:00 UTC: the same split here.
    monkeypatch.setenv("CHARTDESK_AUDIT_TIMEZONE", "America/New_York")
    get_settings.cache_clear()
    ny = {d.day.isoformat(): d.total for d in work.throughput(session, as_of=AS_OF).days}
    assert ny["2026-11-27"] == 4  # 09:00 UTC is 04:00 EST
    assert ny["2026-11-26"] == 1


def test_pages_and_csv(make_client):
    _held("physician query", "2026-11-27T09:00")
    sup = make_client()
    sign_in(sup, make_user("sue", "supervisor"))
    page = sup.get("/reports/work")
    assert page.status_code == 200
    assert 'id="holds-chart"' in page.text
    assert 'data-reason="physician query"' in page.text
    rows = list(csv.reader(io.StringIO(sup.get("/reports/work.csv").text)))
    assert rows[0] == ["as_of", "figure", "key", "bucket", "count", "oldest_days"]
    assert sum(int(r[4]) for r in rows[1:] if r[1] == "on_hold") == 1
    page = sup.get("/reports/throughput")
    assert page.status_code == 200
    assert 'id="throughput-chart"' in page.text
    assert page.text.count("<tr data-day=") == 30
    rows = list(csv.reader(io.StringIO(sup.get("/reports/throughput.csv").text)))
    assert rows[0] == ["day", "class", "charts"]
    assert len([r for r in rows[1:] if r[1] == "all"]) == 30
    coder = make_client()
    sign_in(coder, make_user("cody", "coder"))
    for path in (
        "/reports/work",
        "/reports/work.csv",
        "/reports/throughput",
        "/reports/throughput.csv",
    ):
        assert coder.get(path).status_code == 403
