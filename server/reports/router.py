"""HTTP routes of the reports: supervisor pages (chart, table, CSV) and /api/v1/reports JSON."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from server.auth.deps import CoderDep, SessionDep, SupervisorDep, SupervisorOrBillerDep
from server.errors import AppError
from server.reports import denials, export, service, work
from server.reports.schemas import DnfbView, ProductivityView
from server.reports.svg import Bar, bar_chart
from server.web import forms
from server.web.templates import render

router = APIRouter()

API = "/api/v1/reports"
CSV = "text/csv; charset=utf-8"

By = Annotated[str, Query(max_length=20, description="queue, class or payer_class")]
GROUPINGS = {"queue": "Queue", "class": "Encounter class", "payer_class": "Payer class"}
When = Annotated[str | None, Query(max_length=40, description="ISO 8601 time or date")]


def _csv(body: str, name: str) -> Response:
    return Response(
        body, media_type=CSV, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


# ---------------------------------------------------------------- API


@router.get(f"{API}/dnfb", tags=["reports"], response_model=DnfbView)
def api_dnfb(session: SessionDep, _: SupervisorDep, by: By = "queue") -> DnfbView:
    """Discharged, not final billed: counts per days-since-discharge bucket, per group."""
    return DnfbView.of(service.dnfb(session, by=by))


@router.get(f"{API}/productivity", tags=["reports"], response_model=ProductivityView)
def api_productivity(
    session: SessionDep, _: SupervisorDep, since: When = None, until: When = None
) -> ProductivityView:
    """Per coder: charts submitted, hours of the leases that ended in a submit, per class."""
    start = service.parse_moment(since, field="since")
    end = service.parse_moment(until, field="until", end=True)
    return ProductivityView.of(service.productivity(session, since=start, until=end))


# ---------------------------------------------------------------- pages


def _dnfb_page(
    request: Request, session: Session, *, by: str, error: AppError | None = None
) -> Response:
    if by not in service.DNFB_GROUPINGS:
        by = "queue"
    report = service.dnfb(session, by=by)
    chart = bar_chart(
        [Bar(b.label, b.count) for b in report.buckets],
        title="DNFB: discharged, not final billed, by days since discharge",
        x_label="Days since discharge",
        y_label="Charts (count)",
        chart_id="dnfb-chart",
        whole=True,
    )
    return render(
        request,
        "reports/dnfb.html",
        {
            "report": report,
            "chart": chart,
            "groupings": GROUPINGS,
            "error": forms.message(error) if error else None,
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/reports/dnfb", response_class=HTMLResponse)
def dnfb_page(
    request: Request, session: SessionDep, _: SupervisorDep, by: By = "queue"
) -> Response:
    """DNFB aging as a bar chart with its numbers beside it, per group, and a CSV link."""
    forms.on_error(request, lambda req, own, exc, _f: _dnfb_page(req, own, by="queue", error=exc))
    service.check_grouping(by)  # a bad grouping fails here, and the page shows why
    return _dnfb_page(request, session, by=by)


@router.get("/reports/dnfb.csv")
def dnfb_csv(session: SessionDep, _: SupervisorDep, by: By = "queue") -> Response:
    """DNFB as CSV: one row per group and bucket, then the totals."""
    report = service.dnfb(session, by=by)
    return _csv(export.dnfb_csv(report), f"dnfb-by-{report.by}.csv")


def _productivity_page(
    request: Request,
    session: Session,
    *,
    since: str | None,
    until: str | None,
    error: AppError | None = None,
) -> Response:
    if error is not None:
        report = service.productivity(session)
    else:
        start = service.parse_moment(since, field="since")
        end = service.parse_moment(until, field="until", end=True)
        report = service.productivity(session, since=start, until=end)
    chart = bar_chart(
        [Bar(c.coder, c.charts_per_hour or 0.0) for c in report.coders],
        title="Charts per hour by coder",
        x_label="Coder",
        y_label="Charts per hour",
        chart_id="productivity-chart",
    )
    zone = service.hospital_zone()
    return render(
        request,
        "reports/productivity.html",
        {
            "report": report,
            "chart": chart,
            "since_day": report.since.astimezone(zone).date().isoformat(),
            "until_day": (report.until.astimezone(zone) - timedelta(seconds=1)).date().isoformat(),
            "error": forms.message(error) if error else None,
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/reports/productivity", response_class=HTMLResponse)
def productivity_page(
    request: Request,
    session: SessionDep,
    _: SupervisorDep,
    since: When = None,
    until: When = None,
) -> Response:
    """Productivity per coder over a window (default: the last 7 days), chart, table, CSV."""
    forms.on_error(
        request,
        lambda req, own, exc, _f: _productivity_page(req, own, since=None, until=None, error=exc),
    )
    return _productivity_page(request, session, since=since, until=until)


@router.get("/reports/productivity.csv")
def productivity_csv(
    session: SessionDep, _: SupervisorDep, since: When = None, until: When = None
) -> Response:
    """Productivity as CSV: a row per coder, then one per encounter class they coded."""
    start = service.parse_moment(since, field="since")
    end = service.parse_moment(until, field="until", end=True)
    report = service.productivity(session, since=start, until=end)
    return _csv(export.productivity_csv(report), "productivity.csv")


@router.get("/reports/work", response_class=HTMLResponse)
def work_page(request: Request, session: SessionDep, _: SupervisorDep) -> Response:
    """Holds by reason and days on hold (chart and table), and overdue items by queue."""
    report = work.work_in_hand(session)
    totals = {label: sum(r.counts[label] for r in report.holds) for label in work.HOLD_LABELS}
    chart = bar_chart(
        [Bar(label, count) for label, count in totals.items()],
        title="Charts on hold by days on hold",
        x_label="Days on hold",
        y_label="Charts (count)",
        chart_id="holds-chart",
        whole=True,
    )
    return render(
        request,
        "reports/work.html",
        {"report": report, "chart": chart, "totals": totals, "labels": work.HOLD_LABELS},
    )


@router.get("/reports/work.csv")
def work_csv(session: SessionDep, _: SupervisorDep) -> Response:
    """Holds by reason and days on hold, and overdue items by queue, as CSV."""
    return _csv(export.work_csv(work.work_in_hand(session)), "work-in-hand.csv")


@router.get("/reports/throughput", response_class=HTMLResponse)
def throughput_page(request: Request, session: SessionDep, _: SupervisorDep) -> Response:
    """Charts coded per day over the last 30 days (chart), per class (table)."""
    report = work.throughput(session)
    chart = bar_chart(
        [Bar(d.day.strftime("%d %b"), d.total) for d in report.days],
        title=f"Charts coded per day, last {len(report.days)} days",
        x_label="Day (hospital time)",
        y_label="Charts coded (count)",
        chart_id="throughput-chart",
        width=960,
        whole=True,
        label_every=5,
    )
    return render(request, "reports/throughput.html", {"report": report, "chart": chart})


@router.get("/reports/throughput.csv")
def throughput_csv(session: SessionDep, _: SupervisorDep) -> Response:
    """Charts coded per day over the last 30 days, in all and per class, as CSV."""
    return _csv(export.throughput_csv(work.throughput(session)), "throughput.csv")


@router.get("/reports/mine", response_class=HTMLResponse)
def my_figures_page(request: Request, session: SessionDep, actor: CoderDep) -> Response:
    """A coder's own dashboard: their productivity (last 7 days, per class) and their own
    activity in the audit log (last 30 days; the look is audited)."""
    report = service.productivity(session, coder_id=actor.user_id)
    mine = report.coders[0] if report.coders else None
    return render(
        request,
        "reports/mine.html",
        {"report": report, "mine": mine, "events": service.my_activity(session, actor=actor)},
    )


# ---------------------------------------------------------------- denials (835 remittances)

DenialsBy = Annotated[str, Query(max_length=10, description="carc, payer, queue or coder")]


def _denials(
    session: Session, *, by: str, since: str | None, until: str | None
) -> denials.DenialReport:
    start = service.parse_moment(since, field="since")
    end = service.parse_moment(until, field="until", end=True)
    return denials.report(session, by=by, since=start, until=end)


@router.get(f"{API}/denials", tags=["reports"])
def api_denials(
    session: SessionDep,
    _: SupervisorOrBillerDep,
    by: DenialsBy = "carc",
    since: When = None,
    until: When = None,
) -> dict[str, object]:
    """Denial rate and dollars by CARC, payer, queue or coder, and the top denied codes."""
    return denials.as_json(_denials(session, by=by, since=since, until=until))


def _denials_page(
    request: Request,
    session: Session,
    *,
    by: str,
    since: str | None = None,
    until: str | None = None,
    error: AppError | None = None,
) -> Response:
    if by not in denials.GROUPINGS:
        by = "carc"
    if error is not None:  # the whole period, with the message and the dates as typed
        report = denials.report(session, by=by)
    else:
        report = _denials(session, by=by, since=since, until=until)
    chart = bar_chart(
        [Bar(g.key, g.dollars) for g in report.groups[:12]],
        title=f"Dollars denied by {denials.GROUPINGS[by].lower()}",
        x_label=denials.GROUPINGS[by],
        y_label="Dollars denied",
        chart_id="denials-chart",
    )
    return render(
        request,
        "reports/denials.html",
        {
            "report": report,
            "chart": chart,
            "groupings": denials.GROUPINGS,
            "since": since or "",
            "until": until or "",
            "error": forms.message(error) if error else None,
            "errors": forms.field_errors(error),
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/reports/denials", response_class=HTMLResponse)
def denials_page(
    request: Request,
    session: SessionDep,
    _: SupervisorOrBillerDep,
    by: DenialsBy = "carc",
    since: When = None,
    until: When = None,
) -> Response:
    """Denials: a chart of dollars denied, the table beside it, top codes and a CSV link."""

    def failed(req: Request, own: Session, exc: AppError, _f: object) -> Response:
        return _denials_page(req, own, by=by, since=since, until=until, error=exc)

    forms.on_error(request, failed)
    denials.check_grouping(by)
    return _denials_page(request, session, by=by, since=since, until=until)


@router.get("/reports/denials.csv")
def denials_csv(
    session: SessionDep,
    _: SupervisorOrBillerDep,
    by: DenialsBy = "carc",
    since: When = None,
    until: When = None,
) -> Response:
    """Denials as CSV: one row per group, the total, then the top denied codes."""
    report = _denials(session, by=by, since=since, until=until)
    return _csv(denials.as_csv(report), f"denials-by-{report.by}.csv")
