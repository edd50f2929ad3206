"""HTTP routes of the reports: supervisor pages (chart, table, CSV) and /api/v1/reports JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session
from starlette.datastructures import FormData

from server.auth.deps import MAX_ROW_ID, CoderDep, SessionDep, SupervisorDep, SupervisorOrBillerDep
from server.errors import AppError
from server.reports import casemix, denials, export, quality, service, standards, work
from server.reports.schemas import DnfbView, MixView, ProductivityView, ShiftsView
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
    start, end = service.parse_window(since, until)
    return ProductivityView.of(service.productivity(session, since=start, until=end))


class StandardIn(BaseModel):
    """`PUT /api/v1/reports/standards`: one class's charts per hour (null clears it)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    class_: str = Field(alias="class", max_length=30)
    charts_per_hour: float | None = None


def _standards_json(session: Session) -> dict[str, object]:
    return {
        "items": [
            {
                "class": r.encounter_class,
                "charts_per_hour": r.charts_per_hour,
                "updated_by": r.updated_by,
                "updated_at": r.updated_at,
            }
            for r in standards.list_standards(session)
        ]
    }


@router.get(f"{API}/standards", tags=["reports"])
def api_standards(session: SessionDep, _: SupervisorDep) -> dict[str, object]:
    """The productivity standard (charts per hour) of each encounter class; null: not set."""
    return _standards_json(session)


@router.put(f"{API}/standards", tags=["reports"])
def api_set_standard(
    session: SessionDep, actor: SupervisorDep, body: StandardIn
) -> dict[str, object]:
    """Set (or with null clear) one class's standard; audited; 422 at the field."""
    standards.set_standard(
        session, actor=actor, encounter_class=body.class_, charts_per_hour=body.charts_per_hour
    )
    return _standards_json(session)


MixBy = Annotated[str, Query(max_length=20, description="coder, queue or month")]


@dataclass(frozen=True)
class MixQuery:
    """What the case-mix and capture figures are asked (one report, drawn two ways)."""

    by: str
    since: str | None
    until: str | None

    def report(self, session: Session) -> casemix.MixReport:
        start, end = service.parse_window(self.since, self.until)
        return casemix.case_mix(session, by=self.by, since=start, until=end)


def _mix_query(by: MixBy = "coder", since: When = None, until: When = None) -> MixQuery:
    return MixQuery(by=by, since=since, until=until)


Mix = Annotated[MixQuery, Depends(_mix_query)]


@router.get(f"{API}/casemix", tags=["reports"], response_model=MixView)
def api_casemix(session: SessionDep, _: SupervisorDep, q: Mix) -> MixView:
    """Case-mix index (mean relative weight of final MS-DRGs) of inpatient stays, with the
    CC/MCC capture rate, by coder, queue or month."""
    return MixView.of(q.report(session))


@router.get(f"{API}/cc-capture", tags=["reports"], response_model=MixView)
def api_capture(session: SessionDep, _: SupervisorDep, q: Mix) -> MixView:
    """CC/MCC capture rate: the share of inpatient stays whose final grouping has at least
    one secondary acting as CC or MCC, by coder, queue or month (same figures as casemix)."""
    return MixView.of(q.report(session))


@router.get(f"{API}/drg-shifts", tags=["reports"], response_model=ShiftsView)
def api_drg_shifts(
    session: SessionDep, _: SupervisorDep, since: When = None, until: When = None
) -> ShiftsView:
    """DRG shifts: baseline to final (the coder) and final to after QA (the reviewer)."""
    start, end = service.parse_window(since, until)
    return ShiftsView.of(casemix.drg_shifts(session, since=start, until=end))


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
        start, end = service.parse_window(since, until)
        report = service.productivity(session, since=start, until=end)
    chart = bar_chart(
        [Bar(c.coder, c.charts_per_hour or 0.0) for c in report.coders],
        title="Charts per hour by coder",
        x_label="Coder",
        y_label="Charts per hour",
        chart_id="productivity-chart",
    )
    zone = service.hospital_zone()
    # Only coders with a percent: one who worked no class with a standard is "—" in the
    # table, not a bar at 0 %.
    chart_standard = bar_chart(
        [
            Bar(c.coder, c.percent_of_standard)
            for c in report.coders
            if c.percent_of_standard is not None
        ],
        title="Percent of the standard by coder",
        x_label="Coder",
        y_label="Percent of standard (%)",
        chart_id="standard-chart",
    )
    return render(
        request,
        "reports/productivity.html",
        {
            "report": report,
            "chart": chart,
            "chart_standard": chart_standard,
            "no_standard": all(c.percent_of_standard is None for c in report.coders),
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
    start, end = service.parse_window(since, until)
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
    qa = quality.accuracy(session, coder_id=actor.user_id).get(actor.name)
    return render(
        request,
        "reports/mine.html",
        {
            "report": report,
            "mine": mine,
            "qa": qa,
            "findings": quality.my_findings(session, coder_id=actor.user_id or 0),
            "events": service.my_activity(session, actor=actor),
        },
    )


# ---------------------------------------------------------------- standards page


def _standards_page(
    request: Request,
    session: Session,
    *,
    error: AppError | None = None,
    form: FormData | None = None,
    saved: bool = False,
) -> Response:
    return render(
        request,
        "reports/standards.html",
        {
            "rows": standards.list_standards(session),
            "error": forms.message(error) if error else None,
            "errors": forms.field_errors(error),
            "typed": {
                "class": form.get("class") if form else None,
                "rate": form.get("charts_per_hour") if form else None,
            },
            "saved": saved,
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/reports/standards", response_class=HTMLResponse)
def standards_page(
    request: Request,
    session: SessionDep,
    _: SupervisorDep,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The productivity standard per encounter class (charts per hour), and a form to set it."""
    return _standards_page(request, session, saved=done == "saved")


@router.post("/reports/standards", response_class=HTMLResponse)
def set_standard_page(
    request: Request,
    session: SessionDep,
    actor: SupervisorDep,
    _page: Annotated[
        None,
        Depends(
            forms.ErrorPage(
                lambda req, own, exc, form: _standards_page(req, own, error=exc, form=form)
            )
        ),
    ],
    encounter_class: Annotated[str, Form(alias="class", max_length=30)] = "",
    charts_per_hour: Annotated[str, Form(max_length=30)] = "",
) -> Response:
    """Set one class's standard from the page; a refused value shows the page again with the
    message at the field and what was typed."""
    standards.set_standard(
        session, actor=actor, encounter_class=encounter_class, charts_per_hour=charts_per_hour
    )
    return RedirectResponse("/reports/standards?done=saved", status_code=303)


# ---------------------------------------------------------------- case-mix, capture, shifts


def _mix_page(
    request: Request,
    session: Session,
    *,
    figure: str,
    q: MixQuery,
    error: AppError | None = None,
) -> Response:
    if error is not None or q.by not in casemix.GROUPINGS:
        by = q.by if q.by in casemix.GROUPINGS else "coder"
        report = casemix.case_mix(session, by=by)
    else:
        report = q.report(session)
    label = casemix.GROUPINGS[report.by]
    if figure == "casemix":
        chart = bar_chart(
            [Bar(g.key, g.cmi or 0.0) for g in report.groups],
            title=f"Case-mix index by {label.lower()}",
            x_label=label,
            y_label="Case-mix index (mean weight)",
            chart_id="casemix-chart",
        )
    else:
        chart = bar_chart(
            [Bar(g.key, g.capture_rate or 0.0) for g in report.groups],
            title=f"CC/MCC capture rate by {label.lower()}",
            x_label=label,
            y_label="Stays with a CC or MCC (%)",
            chart_id="capture-chart",
        )
    zone = service.hospital_zone()
    return render(
        request,
        f"reports/{figure}.html",
        {
            "report": report,
            "chart": chart,
            "groupings": casemix.GROUPINGS,
            "since_day": report.since.astimezone(zone).date().isoformat(),
            "until_day": (report.until.astimezone(zone) - timedelta(seconds=1)).date().isoformat(),
            "error": forms.message(error) if error else None,
        },
        status_code=error.status_code if error else 200,
    )


def _mix_route(request: Request, session: Session, *, figure: str, q: MixQuery) -> Response:
    """A figure's page; a refused query shows the whole period with the message."""
    forms.on_error(
        request,
        lambda req, own, exc, _f: _mix_page(req, own, figure=figure, q=q, error=exc),
    )
    casemix.check_grouping(q.by)
    return _mix_page(request, session, figure=figure, q=q)


@router.get("/reports/casemix", response_class=HTMLResponse)
def casemix_page(request: Request, session: SessionDep, _: SupervisorDep, q: Mix) -> Response:
    """Case-mix index by coder, queue or month: chart, table beside it, CSV."""
    return _mix_route(request, session, figure="casemix", q=q)


@router.get("/reports/casemix.csv")
def casemix_csv(session: SessionDep, _: SupervisorDep, q: Mix) -> Response:
    """Case-mix index and capture rate per group as CSV, then the totals."""
    report = q.report(session)
    return _csv(export.mix_csv(report), f"casemix-by-{report.by}.csv")


@router.get("/reports/cc-capture", response_class=HTMLResponse)
def capture_page(request: Request, session: SessionDep, _: SupervisorDep, q: Mix) -> Response:
    """CC/MCC capture rate by coder, queue or month: chart, table beside it, CSV."""
    return _mix_route(request, session, figure="capture", q=q)


@router.get("/reports/cc-capture.csv")
def capture_csv(session: SessionDep, _: SupervisorDep, q: Mix) -> Response:
    """The capture rate per group as CSV (the same file as the case-mix CSV)."""
    return casemix_csv(session, _, q)


def _shifts_page(
    request: Request,
    session: Session,
    *,
    since: str | None,
    until: str | None,
    error: AppError | None = None,
) -> Response:
    if error is not None:
        report = casemix.drg_shifts(session)
    else:
        start, end = service.parse_window(since, until)
        report = casemix.drg_shifts(session, since=start, until=end)
    chart = bar_chart(
        [Bar(title, report.count(kind)) for kind, title in casemix.SHIFT_KINDS.items()],
        title="DRG shifts by kind",
        x_label="Shift",
        y_label="Stays (count)",
        chart_id="shifts-chart",
        whole=True,
    )
    zone = service.hospital_zone()
    return render(
        request,
        "reports/shifts.html",
        {
            "report": report,
            "chart": chart,
            "kinds": casemix.SHIFT_KINDS,
            "since_day": report.since.astimezone(zone).date().isoformat(),
            "until_day": (report.until.astimezone(zone) - timedelta(seconds=1)).date().isoformat(),
            "error": forms.message(error) if error else None,
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/reports/drg-shifts", response_class=HTMLResponse)
def shifts_page(
    request: Request, session: SessionDep, _: SupervisorDep, since: When = None, until: When = None
) -> Response:
    """DRG shifts (baseline to final, final to after QA) with who and why: chart, list, CSV."""
    forms.on_error(
        request,
        lambda req, own, exc, _f: _shifts_page(req, own, since=None, until=None, error=exc),
    )
    return _shifts_page(request, session, since=since, until=until)


@router.get("/reports/drg-shifts.csv")
def shifts_csv(
    session: SessionDep, _: SupervisorDep, since: When = None, until: When = None
) -> Response:
    """Every DRG shift of the window as CSV (without the sealed QA reasons)."""
    start, end = service.parse_window(since, until)
    return _csv(
        export.shifts_csv(casemix.drg_shifts(session, since=start, until=end)), "drg-shifts.csv"
    )


@router.post("/reports/drg-shifts/{review_id}/reason", response_class=HTMLResponse)
def shift_reason(
    request: Request,
    session: SessionDep,
    actor: SupervisorDep,
    review_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> Response:
    """The QA reviewer's reason for one shift, opened through the audited door (htmx)."""
    reason = casemix.shift_reason(session, actor=actor, review_id=review_id)
    return render(
        request, "reports/shifts.html", {"reason": reason, "review_id": review_id}, block="reason"
    )


@router.post("/reports/drg-shifts/queries/{query_id}/answer", response_class=HTMLResponse)
def shift_query_answer(
    request: Request,
    session: SessionDep,
    actor: SupervisorDep,
    query_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> Response:
    """The provider's answer behind a coder's shift, opened through the audited door (htmx)."""
    answer = casemix.query_answer(session, actor=actor, query_id=query_id)
    return render(
        request, "reports/shifts.html", {"answer": answer, "query_id": query_id}, block="answer"
    )


# ---------------------------------------------------------------- denials (835 remittances)

DenialsBy = Annotated[str, Query(max_length=10, description="carc, payer, queue or coder")]


def _denials(
    session: Session, *, by: str, since: str | None, until: str | None
) -> denials.DenialReport:
    start, end = service.parse_window(since, until)
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
