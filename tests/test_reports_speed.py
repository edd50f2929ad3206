"""The summaries behind the dashboard figures (issue 20 Speed, migration 0027) give the
same figures as the raw history: per-day coding summary kept on submit, the discharge
moment kept beside the status, the compliance activity rolled up for settled days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlmodel import Session, select

from server.audit import activity
from server.auth.principal import system_principal
from server.db import get_engine
from server.models import AuditDay, AuditEvent, CodingDay, Encounter, Status, WorkItem
from server.queue import service as queue_service
from server.records import service as records_service
from server.reports import service, summary
from server.reports.work import throughput
from tests.support.coding import GOOD_CODES, coder_with_item
from tests.support.factories import encounter_data, make_user
from tests.test_reports import AS_OF, IP, QA, RD, _at, _events, _item


def _figures(report: service.ProductivityReport) -> dict[str, tuple[int, float]]:
    return {c.coder: (c.charts, c.hours) for c in report.coders}


def _history() -> tuple[int, int]:
    """cora: 19 Nov 23:30 (30 min), 20 Nov 10:30 (30 min, after an idle lease), 21 Nov
    09:30 (30 min); dev: 20 Nov 13:00 (1 h)."""
    cora = make_user("cora", "coder").user_id
    dev = make_user("dev", "coder").user_id
    late, one, four = (_item(klass="outpatient") for _ in range(3))
    two = _item(klass="inpatient")
    _events(
        late,
        ("2026-11-19T23:00", cora, "claim", IP, cora),
        ("2026-11-19T23:30", cora, "submit", QA, None),
    )
    _events(
        one,
        ("2026-11-20T09:00", cora, "claim", IP, cora),
        ("2026-11-20T09:40", cora, "release", RD, None),  # idle: not counted
        ("2026-11-20T10:00", cora, "claim", IP, cora),
        ("2026-11-20T10:30", cora, "submit", QA, None),
    )
    _events(
        two,
        ("2026-11-20T12:00", dev, "claim", IP, dev),
        ("2026-11-20T13:00", dev, "submit", QA, None),
    )
    _events(
        four,
        ("2026-11-21T09:00", cora, "claim", IP, cora),
        ("2026-11-21T09:30", cora, "submit", QA, None),
    )
    return cora, dev


def test_each_submit_is_summed_into_its_day_as_it_is_recorded(session):
    cora, dev = _history()
    rows = session.exec(select(CodingDay).order_by(CodingDay.day, CodingDay.coder_id)).all()
    got = [(str(r.day), r.coder_id, r.encounter_class, r.charts, r.lease_seconds) for r in rows]
    assert got == [
        ("2026-11-19", cora, "outpatient", 1, 1800.0),
        ("2026-11-20", cora, "outpatient", 1, 1800.0),  # the idle 40 minutes are not in it
        ("2026-11-20", dev, "inpatient", 1, 3600.0),
        ("2026-11-21", cora, "outpatient", 1, 1800.0),
    ]
    # The migration's backfill builds the same rows from the stored submits.
    before = [(r.day, r.coder_id, r.encounter_class, r.charts, r.lease_seconds) for r in rows]
    summary.rebuild_coding_days(session.connection())
    session.commit()
    again = session.exec(select(CodingDay).order_by(CodingDay.day, CodingDay.coder_id)).all()
    assert [(r.day, r.coder_id, r.encounter_class, r.charts, r.lease_seconds) for r in again] == (
        before
    )


def test_windows_with_partial_days_match_the_raw_submits(session):
    _history()
    # Whole days from the summary, the partial ends from the raw submits.
    cases = [
        # since, until, expected
        ("2026-11-20T00:00", "2026-11-21T00:00", {"cora": (1, 0.5), "dev": (1, 1.0)}),
        ("2026-11-19T23:15", "2026-11-21T09:15", {"cora": (2, 1.0), "dev": (1, 1.0)}),
        ("2026-11-19T23:45", "2026-11-21T09:45", {"cora": (2, 1.0), "dev": (1, 1.0)}),
        ("2026-11-19T12:00", "2026-11-21T12:00", {"cora": (3, 1.5), "dev": (1, 1.0)}),
        ("2026-11-20T10:15", "2026-11-20T12:30", {"cora": (1, 0.5)}),  # inside one day
        ("2026-11-20T13:30", "2026-11-21T09:00", {}),
    ]
    for since, until, expected in cases:
        report = service.productivity(session, since=_at(since), until=_at(until))
        assert _figures(report) == expected, (since, until)


def test_a_real_submit_counts_its_day_and_the_throughput(make_client):
    held = coder_with_item(make_client)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    with Session(get_engine()) as s:
        rows = s.exec(select(CodingDay)).all()
        assert [(r.coder_id, r.charts) for r in rows] == [(held.account.user_id, 1)]
        assert rows[0].lease_seconds >= 0
        today = throughput(s).days[-1]
        assert today.total == 1
        report = service.productivity(s)
        assert [(c.coder, c.charts) for c in report.coders] == [("coder1", 1)]


def test_the_dashboard_refresh_notices_a_submit(make_client):
    held = coder_with_item(make_client)
    with Session(get_engine()) as s:
        before = queue_service.stats_version(s)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    with Session(get_engine()) as s:
        assert queue_service.stats_version(s) != before


def test_dnfb_follows_a_discharge_date_changed_after_arrival(session):
    item_id = _item(end="2026-11-26T12:00")  # 1 day -> 0-3
    counts = {b.label: b.count for b in service.dnfb(session, as_of=AS_OF).buckets}
    assert counts["0-3"] == 1
    item = session.get(WorkItem, item_id)
    assert item is not None
    assert item.discharged_at == _at("2026-11-26T12:00")
    encounter = session.get(Encounter, item.encounter_id)
    assert encounter is not None
    encounter.end_at = _at("2026-11-10T12:00")  # corrected by the source: 17 days
    session.add(encounter)
    session.commit()
    counts = {b.label: b.count for b in service.dnfb(session, as_of=AS_OF).buckets}
    assert (counts["0-3"], counts["15-30"]) == (0, 1)
    # Its payer class and class corrected too: the groupings follow.
    encounter.payer_class = "medicaid"
    encounter.encounter_class = "emergency"
    session.add(encounter)
    session.commit()
    by_payer = service.dnfb(session, by="payer_class", as_of=AS_OF)
    assert [(g.key, g.total) for g in by_payer.groups] == [("medicaid", 1)]
    by_class = service.dnfb(session, by="class", as_of=AS_OF)
    assert [(g.key, g.total) for g in by_class.groups] == [("emergency", 1)]
    encounter.end_at = None  # discharge undone: its start (none here) -> not aged
    session.add(encounter)
    session.commit()
    assert service.dnfb(session, as_of=AS_OF).total == 0


def test_an_hl7_update_moves_the_item_between_dnfb_buckets(session):
    actor = system_principal("test")
    data = encounter_data(start=_at("2026-11-20T08:00"), end=_at("2026-11-25T08:00"))
    created = records_service.create_encounter(session, actor=actor, data=data)
    session.commit()
    item = session.get(WorkItem, int(created.id))
    assert item is not None
    assert item.discharged_at == _at("2026-11-25T08:00")
    moved = data.model_copy(update={"end": _at("2026-11-01T08:00")})
    records_service.update_encounter(session, actor=actor, data=moved)
    session.commit()
    session.refresh(item)
    assert item.discharged_at == _at("2026-11-01T08:00")
    counts = {b.label: b.count for b in service.dnfb(session, as_of=AS_OF).buckets}
    assert counts["15-30"] == 1


def _event(session: Session, at: datetime, action: str, outcome: str = "success") -> None:
    """An audit event at `at` (on PostgreSQL the database stamps its own clock: a history in
    the past is written with the stamping trigger off, as the bench loader does)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL session_replication_role = replica"))
    session.add(AuditEvent(time=at, action=action, outcome=outcome, actor="t", actor_kind="system"))


def test_activity_rolled_up_days_count_the_same_as_the_log(session):
    now = datetime.now(UTC)
    for back in (1, 3, 5):
        when = now - timedelta(days=back)
        _event(session, when, "view-record")
        _event(session, when, "view-record", "denied")
        _event(session, when, "emergency-access")
        _event(session, when, "sign-in")
    session.commit()
    raw = activity.activity(session, now=now)
    closed = activity.roll_up(session, now=now)
    session.commit()
    assert closed >= 3
    rolled = session.exec(select(AuditDay.day)).all()
    # Yesterday is not settled (a transaction begun in it may still commit): counted raw.
    assert (now - timedelta(days=1)).astimezone(service.hospital_zone()).date() not in rolled
    assert activity.activity(session, now=now) == raw
    assert raw.total("views") >= 3
    assert raw.total("break_glass") >= 3
    # An event landing later on an open day is still counted; a second round closes nothing new.
    _event(session, now, "view-record")
    session.commit()
    assert activity.activity(session, now=now).total("views") == raw.total("views") + 1
    assert activity.roll_up(session, now=now) == 0


def test_a_denied_submit_leaves_no_summary_row(make_client):
    held = coder_with_item(make_client)
    r = held.client.post(f"/api/v1/work/{held.item_id}/submit")  # no codes: refused
    assert r.status_code == 422
    with Session(get_engine()) as s:
        assert s.exec(select(CodingDay)).all() == []
        item = s.get(WorkItem, held.item_id)
        assert item is not None
        assert item.status == Status.in_progress


def test_audit_seal_rolls_the_settled_days_up(session):
    from typer.testing import CliRunner

    from server.cli import app

    old = datetime.now(UTC) - timedelta(days=4)
    _event(session, old, "view-record")
    _event(session, old, "emergency-access", "denied")
    session.commit()
    out = CliRunner().invoke(app, ["audit", "seal"])
    assert out.exit_code == 0, out.output
    assert "settled days rolled up" in out.output
    day = old.astimezone(service.hospital_zone()).date()
    rows = {r.kind: r.events for r in session.exec(select(AuditDay).where(AuditDay.day == day))}
    assert rows == {"views": 1, "refusals": 0, "break_glass": 1}
