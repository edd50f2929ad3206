"""Supervisor reports: DNFB aging and productivity match figures computed by hand."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from server.config import get_settings
from server.db import get_engine
from server.models import AuditEvent, Status, WorkItemEvent
from server.queue.items import record_event
from server.reports import service, summary
from tests.support.coding import GOOD_CODES, coder_with_item
from tests.support.factories import make_user, sign_in
from tests.support.queue import dummy_item, ensure_queue

AS_OF = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _item(
    *,
    queue: str = "default",
    status: str = Status.ready,
    end: str | None = None,
    start: str | None = None,
    klass: str = "outpatient",
    payer: str | None = "commercial",
) -> int:
    """A work item whose encounter has the given dates of service (dummy ciphertext)."""
    queue_id = ensure_queue(queue)
    with Session(get_engine(), expire_on_commit=False) as s:
        item = dummy_item(
            s,
            queue_id=queue_id,
            status=status,
            encounter={
                "encounter_class": klass,
                "payer_class": payer,
                "start_at": _at(start) if start else None,
                "end_at": _at(end) if end else None,
            },
        )
        s.commit()
        assert item.id is not None
        return item.id


def _history() -> None:
    """Discharges around AS_OF (27 Nov 2026 15:00 UTC), ages worked out by hand in UTC."""
    _item(end="2026-11-27T01:00")  # 0 days -> 0-3
    _item(end="2026-11-24T23:59", status=Status.in_progress)  # 3 -> 0-3
    _item(end="2026-11-23T00:00", status=Status.on_hold, queue="inpt", klass="inpatient")  # 4
    _item(start="2026-11-20T10:00", status=Status.qa_review, payer=None)  # no end: start, 7
    _item(end="2026-11-19T08:00", status=Status.ready_for_billing)  # 8 -> 8-14
    _item(end="2026-11-13T22:00", status=Status.returned, queue="inpt", klass="inpatient")  # 14
    _item(end="2026-11-12T12:00", payer="medicare")  # 15 -> 15-30
    _item(end="2026-10-28T12:00", queue="inpt", klass="inpatient", payer="medicare")  # 30
    _item(end="2026-10-27T12:00", payer="medicare")  # 31 -> 31+
    _item(end="2026-09-01T12:00", queue="inpt", klass="inpatient")  # 87 -> 31+
    _item(end="2026-11-01T12:00", status=Status.billed)  # billed: not DNFB
    _item(end="2026-11-28T12:00")  # not discharged yet
    _item()  # no dates of service: cannot be aged, not counted


def _counts(buckets: list[service.Bucket]) -> dict[str, int]:
    return {b.label: b.count for b in buckets}


def test_dnfb_buckets_from_discharge_dates(session):
    _history()
    report = service.dnfb(session, by="queue", as_of=AS_OF)
    assert _counts(report.buckets) == {"0-3": 2, "4-7": 2, "8-14": 2, "15-30": 2, "31+": 2}
    assert report.total == 10
    groups = {g.key: _counts(g.buckets) for g in report.groups}
    assert groups == {
        "default": {"0-3": 2, "4-7": 1, "8-14": 1, "15-30": 1, "31+": 1},
        "inpt": {"0-3": 0, "4-7": 1, "8-14": 1, "15-30": 1, "31+": 1},
    }
    assert all(b.charges is None for b in report.buckets)  # sealed: unknown, never 0

    by_class = service.dnfb(session, by="class", as_of=AS_OF)
    assert [g.key for g in by_class.groups] == ["inpatient", "outpatient"]
    assert by_class.groups[0].total == 4

    by_payer = {g.key: g.total for g in service.dnfb(session, by="payer_class", as_of=AS_OF).groups}
    assert by_payer == {"commercial": 6, "medicare": 3, "(none)": 1}


def test_dnfb_days_are_counted_in_the_hospitals_zone(session, monkeypatch):
    monkeypatch.setenv("CHARTDESK_AUDIT_TIMEZONE", "America/New_York")
    get_settings.cache_clear()
    # AS_OF is 27 Nov 10:00 EST. 27 Nov 03:00 UTC is 26 Nov 22:00 EST: 1 day, not 0.
    _item(end="2026-11-27T03:00")
    # 24 Nov 04:00 UTC is 23 Nov 23:00 EST: 4 days (4-7), where UTC would say 3 (0-3).
    _item(end="2026-11-24T04:00")
    report = service.dnfb(session, as_of=AS_OF)
    assert _counts(report.buckets) == {"0-3": 1, "4-7": 1, "8-14": 0, "15-30": 0, "31+": 0}
    assert service.age_days(_at("2026-11-24T04:00"), AS_OF) == 4


def test_dnfb_api_page_and_csv(make_client):
    now = datetime.now(UTC)
    _item(end=(now - timedelta(days=10)).isoformat()[:16], payer="=HYPERLINK(1)")
    _item(end=(now - timedelta(days=40)).isoformat()[:16], klass="inpatient")
    sup = make_client()
    sign_in(sup, make_user("sue", "supervisor"))

    body = sup.get("/api/v1/reports/dnfb?by=payer_class").json()
    assert body["by"] == "payer_class"
    assert [b["label"] for b in body["buckets"]] == ["0-3", "4-7", "8-14", "15-30", "31+"]
    assert {b["label"]: b["count"] for b in body["buckets"]}["8-14"] == 1
    assert body["buckets"][0] == {"label": "0-3", "count": 0, "charges": None}
    assert {g["key"] for g in body["groups"]} == {"=HYPERLINK(1)", "commercial"}
    assert body["charges_available"] is False
    bad = sup.get("/api/v1/reports/dnfb?by=patient")
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_failed"

    page = sup.get("/reports/dnfb?by=class")
    assert page.status_code == 200
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="dnfb-chart"' in page.text
    assert 'role="img"' in page.text
    assert '<title id="dnfb-chart-title">' in page.text
    assert 'id="dnfb-buckets"' in page.text
    assert 'href="/reports/dnfb.csv?by=class"' in page.text
    assert "style=" not in page.text.split('id="dnfb-chart"')[1].split("</svg>")[0]
    # A bad grouping shows the page again, with why.
    again = sup.get("/reports/dnfb?by=patient")
    assert again.status_code == 422
    assert "Group DNFB by queue, class or payer_class." in again.text
    assert 'id="dnfb-chart"' in again.text

    got = sup.get("/reports/dnfb.csv?by=payer_class")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/csv")
    assert "attachment" in got.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(got.text)))
    assert rows[0] == ["as_of", "group_by", "group", "bucket", "count", "charges"]
    groups = {r[2] for r in rows[1:]}
    assert "'=HYPERLINK(1)" in groups  # formula-safe
    assert "=HYPERLINK(1)" not in groups
    totals = {r[3]: r[4] for r in rows[1:] if r[2] == "all"}
    assert totals == {"0-3": "0", "4-7": "0", "8-14": "1", "15-30": "0", "31+": "1"}

    coder = make_client()
    sign_in(coder, make_user("cody", "coder"))
    for path in ("/api/v1/reports/dnfb", "/reports/dnfb", "/reports/dnfb.csv"):
        assert coder.get(path).status_code == 403


def test_oldest_ready_ages_from_discharge_not_arrival(make_client):
    six_weeks = datetime.now(UTC) - timedelta(days=42)
    _item(queue="old", end=six_weeks.isoformat()[:16])
    _item(queue="undated")  # no dates of service: aged from arrival as before
    sup = make_client()
    sign_in(sup, make_user("sue", "supervisor"))
    queues = {q["name"]: q for q in sup.get("/api/v1/queues").json()["items"]}
    assert queues["old"]["oldest_ready_age_seconds"] >= 42 * 86400 - 120
    assert queues["undated"]["oldest_ready_age_seconds"] < 600
    assert "42d" in sup.get("/supervise").text


# ---------------------------------------------------------------- productivity


def _events(item_id: int, *steps: tuple[str, int | None, str, str, int | None]) -> None:
    """(time, actor, action, to_status, owner) steps of one item's scripted history."""
    with Session(get_engine()) as s:
        status = Status.ready
        for at, actor, action, to_status, owner in steps:
            record_event(
                s,
                item_id=item_id,
                actor_id=actor,
                action=action,
                from_status=status,
                to_status=to_status,
                owner_id=owner,
                at=_at(at),
            )
            status = to_status
        s.commit()


IP, RD, HOLD, QA = Status.in_progress, Status.ready, Status.on_hold, Status.ready_for_billing


def test_charts_per_hour_exclude_idle_leases(make_client):
    cora = make_user("cora", "coder").user_id
    dev = make_user("dev", "coder").user_id
    boss = make_user("sue", "supervisor")
    one, four, five = (_item(klass="outpatient") for _ in range(3))
    two, three = (_item(klass="inpatient") for _ in range(2))
    # 1: an idle lease (released after 40 min, not counted), then 30 min to submit.
    _events(
        one,
        ("2026-11-20T09:00", cora, "claim", IP, cora),
        ("2026-11-20T09:40", cora, "release", RD, None),
        ("2026-11-20T10:00", cora, "claim", IP, cora),
        ("2026-11-20T10:30", cora, "submit", QA, None),
    )
    # 2: cora's lease expires (idle); dev leases it and submits an hour later.
    _events(
        two,
        ("2026-11-20T11:00", cora, "claim", IP, cora),
        ("2026-11-20T11:45", None, "expire", RD, None),
        ("2026-11-20T12:00", dev, "claim", IP, dev),
        ("2026-11-20T13:00", dev, "submit", QA, None),
    )
    # 3: assigned to cora, held (idle), resumed, submitted an hour after the resume.
    _events(
        three,
        ("2026-11-20T13:00", boss.user_id, "assign", IP, cora),
        ("2026-11-20T13:20", cora, "hold", HOLD, cora),
        ("2026-11-20T14:00", cora, "resume", IP, cora),
        ("2026-11-20T15:00", cora, "submit", QA, None),
    )
    # 4: a move mid-lease does not restart it: 30 min.
    _events(
        four,
        ("2026-11-20T15:00", cora, "claim", IP, cora),
        ("2026-11-20T15:10", boss.user_id, "move", IP, cora),
        ("2026-11-20T15:30", cora, "submit", QA, None),
    )
    # 5: submitted the next day, outside the window.
    _events(
        five,
        ("2026-11-21T09:00", cora, "claim", IP, cora),
        ("2026-11-21T09:30", cora, "submit", QA, None),
    )
    sup = make_client()
    sign_in(sup, boss)
    # Standards: inpatient 0.5 charts per hour, outpatient 2.5 (emergency left unset).
    for klass, rate in (("inpatient", 0.5), ("outpatient", "2.5")):
        r = sup.put("/api/v1/reports/standards", json={"class": klass, "charts_per_hour": rate})
        assert r.status_code == 200, r.text
    body = sup.get("/api/v1/reports/productivity?since=2026-11-20&until=2026-11-20").json()
    assert body["since"].startswith("2026-11-20T00:00:00")
    assert body["until"].startswith("2026-11-21T00:00:00")
    items = {i["coder"]: i for i in body["items"]}
    assert set(items) == {"cora", "dev"}
    # cora: 3 charts in 0.5 + 1 + 0.5 = 2 hours; dev: 1 chart in 1 hour.
    assert items["cora"]["charts"] == 3
    assert items["cora"]["hours"] == 2.0
    assert items["cora"]["charts_per_hour"] == 1.5
    # Against the standard: inpatient 1.0 / 0.5 = 200 %, outpatient 2.0 / 2.5 = 80 %; in all,
    # standard hours earned 1 / 0.5 + 2 / 2.5 = 2.8 over 2 hours worked = 140 %.
    assert items["cora"]["by_class"] == [
        {
            "class": "inpatient",
            "charts": 1,
            "hours": 1.0,
            "charts_per_hour": 1.0,
            "standard": 0.5,
            "percent_of_standard": 200.0,
        },
        {
            "class": "outpatient",
            "charts": 2,
            "hours": 1.0,
            "charts_per_hour": 2.0,
            "standard": 2.5,
            "percent_of_standard": 80.0,
        },
    ]
    assert items["cora"]["percent_of_standard"] == 140.0
    assert items["dev"] == {
        "coder": "dev",
        "charts": 1,
        "hours": 1.0,
        "charts_per_hour": 1.0,
        "percent_of_standard": 200.0,
        "qa_reviewed": 0,
        "qa_accepted": 0,
        "accuracy_percent": None,
        "case_mix": None,
        "by_class": [
            {
                "class": "inpatient",
                "charts": 1,
                "hours": 1.0,
                "charts_per_hour": 1.0,
                "standard": 0.5,
                "percent_of_standard": 200.0,
            }
        ],
    }
    # The next day alone: item 5, 30 minutes.
    nxt = sup.get("/api/v1/reports/productivity?since=2026-11-21&until=2026-11-21").json()
    assert [(i["coder"], i["charts"], i["hours"]) for i in nxt["items"]] == [("cora", 1, 0.5)]

    page = sup.get("/reports/productivity?since=2026-11-20&until=2026-11-20")
    assert page.status_code == 200
    assert 'id="productivity-chart"' in page.text
    assert 'data-coder="cora"' in page.text
    assert "1.50" in page.text
    got = sup.get("/reports/productivity.csv?since=2026-11-20&until=2026-11-20")
    rows = list(csv.reader(io.StringIO(got.text)))
    assert rows[0][:9] == [
        "since",
        "until",
        "coder",
        "class",
        "charts",
        "hours",
        "charts_per_hour",
        "standard",
        "percent_of_standard",
    ]
    assert [r[2:9] for r in rows[1:]] == [
        ["cora", "all", "3", "2.0", "1.5", "", "140.0"],
        ["cora", "inpatient", "1", "1.0", "1.0", "0.5", "200.0"],
        ["cora", "outpatient", "2", "1.0", "2.0", "2.5", "80.0"],
        ["dev", "all", "1", "1.0", "1.0", "", "200.0"],
        ["dev", "inpatient", "1", "1.0", "1.0", "0.5", "200.0"],
    ]


def test_productivity_from_a_real_lease_release_and_submit(make_client):
    """The events the real services write are the ones the report reads."""
    held = coder_with_item(make_client)
    assert held.client.post(f"/api/v1/work/{held.item_id}/release").status_code == 200
    assert held.client.post("/api/v1/work/next", json={}).json()["id"] == held.item_id
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    times = iter(["2026-11-20T09:00", "2026-11-20T09:50", "2026-11-20T10:00", "2026-11-20T10:45"])
    with Session(get_engine()) as s:
        events = s.exec(
            select(WorkItemEvent)
            .where(WorkItemEvent.work_item_id == held.item_id, WorkItemEvent.action != "ingest")
            .order_by(col(WorkItemEvent.id))
        ).all()
        assert [e.action for e in events] == ["claim", "release", "claim", "submit"]
        # The submit keeps the start of the lease it ends: the second claim, not the first.
        assert events[3].lease_started_at == events[2].at
        for event in events:
            event.at = _at(next(times))
            s.add(event)
        events[3].lease_started_at = events[2].at  # the history moved back in time with it
        submit_id = events[3].id
        s.commit()
        # The history was rewritten under the per-day summary: build it again, as the
        # migration does from the stored submits.
        summary.rebuild_coding_days(s.connection())
        s.commit()
    sup = make_client()
    sign_in(sup, make_user("sue", "supervisor"))
    body = sup.get("/api/v1/reports/productivity?since=2026-11-20&until=2026-11-20").json()
    assert [(i["coder"], i["charts"], i["hours"]) for i in body["items"]] == [("coder1", 1, 0.75)]
    # No standard set: the page says so instead of charting coder1 at 0 % of one.
    page = sup.get("/reports/productivity?since=2026-11-20&until=2026-11-20").text
    assert 'id="no-standard"' in page
    assert 'id="standard-chart"' not in page
    # A submit stored without its lease start (before migration 0023's backfill, or by another
    # path) gives the same figure: the report looks that one up.
    with Session(get_engine()) as s:
        submit = s.get(WorkItemEvent, submit_id)
        assert submit is not None
        submit.lease_started_at = None
        s.add(submit)
        s.commit()
        summary.rebuild_coding_days(s.connection())
        s.commit()
    body = sup.get("/api/v1/reports/productivity?since=2026-11-20&until=2026-11-20").json()
    assert [(i["coder"], i["charts"], i["hours"]) for i in body["items"]] == [("coder1", 1, 0.75)]


@pytest.mark.parametrize(
    ("query", "field"),
    [("since=yesterday", "since"), ("since=2026-11-20&until=2026-11-19", "until")],
)
def test_productivity_refuses_a_bad_window(make_client, query, field):
    sup = make_client()
    sign_in(sup, make_user("sue", "supervisor"))
    r = sup.get(f"/api/v1/reports/productivity?{query}")
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == [field]
    page = sup.get(f"/reports/productivity?{query}")
    assert page.status_code == 422
    assert 'id="report-error"' in page.text
    assert 'id="productivity-chart"' in page.text


def test_a_coder_sees_their_own_figures_and_activity(make_client):
    cora = make_user("cora", "coder", queues=["default"])
    dev = make_user("dev", "coder").user_id
    now = datetime.now(UTC)
    one, two = _item(klass="inpatient"), _item()
    start = (now - timedelta(hours=2)).isoformat()[:19]
    half = (now - timedelta(hours=1, minutes=30)).isoformat()[:19]
    end = (now - timedelta(hours=1)).isoformat()[:19]
    _events(
        one,
        (start, cora.user_id, "claim", IP, cora.user_id),
        (end, cora.user_id, "submit", QA, None),
    )
    _events(two, (start, dev, "claim", IP, dev), (half, dev, "submit", QA, None))
    client = make_client()
    sign_in(client, cora)
    page = client.get("/reports/mine")
    assert page.status_code == 200
    assert '<tr data-class="inpatient">' in page.text
    assert 'data-figure="charts">1<' in page.text
    assert 'data-figure="hours">1.00<' in page.text
    assert "outpatient" not in page.text.split('id="my-productivity"')[1].split("</table>")[0]
    assert '<tr data-action="sign-in">' in page.text  # cora's own sign-in
    with Session(get_engine()) as s:
        looked = s.exec(
            select(AuditEvent).where(
                AuditEvent.actor == "cora", AuditEvent.action == "audit-search"
            )
        ).all()
    assert len(looked) == 1
    sup = make_client()
    sign_in(sup, make_user("sue", "supervisor"))
    assert sup.get("/reports/mine").status_code == 403


def test_reports_rebuild_counts_the_days_again_in_a_new_zone(make_client, monkeypatch):
    """A submit at 03:30 UTC on 20 Nov is 22:30 on 19 Nov in New York: after the zone changes,
    `chartdesk reports rebuild` moves its chart to the 19th (the summary kept the old day)."""
    from typer.testing import CliRunner

    from server.cli import app
    from server.models import AuditDay, CodingDay

    held = coder_with_item(make_client)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    with Session(get_engine()) as s:
        submit = s.exec(
            select(WorkItemEvent).where(
                WorkItemEvent.work_item_id == held.item_id, WorkItemEvent.action == "submit"
            )
        ).one()
        submit.at, submit.lease_started_at = _at("2026-11-20T03:30"), _at("2026-11-20T02:30")
        s.add(submit)
        s.add(AuditDay(day=_at("2026-11-19T12:00").date(), kind="views", events=99))
        s.commit()
        summary.rebuild_coding_days(s.connection())
        s.commit()
        assert [str(d.day) for d in s.exec(select(CodingDay)).all()] == ["2026-11-20"]
    monkeypatch.setenv("CHARTDESK_AUDIT_TIMEZONE", "America/New_York")
    get_settings.cache_clear()
    out = CliRunner().invoke(app, ["reports", "rebuild"])
    assert out.exit_code == 0, out.output
    assert "America/New_York" in out.stdout
    with Session(get_engine()) as s:
        assert [str(d.day) for d in s.exec(select(CodingDay)).all()] == ["2026-11-19"]
        stale = s.exec(select(AuditDay).where(AuditDay.events == 99)).all()
        assert stale == []  # the old zone's roll-up is gone (counted again from the log)
    sup = make_client()
    sign_in(sup, make_user("sue", "supervisor"))
    body = sup.get("/api/v1/reports/productivity?since=2026-11-19&until=2026-11-19").json()
    assert [(i["coder"], i["charts"], i["hours"]) for i in body["items"]] == [("coder1", 1, 1.0)]
