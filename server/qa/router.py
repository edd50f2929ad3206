"""HTTP routes of quality review: the decision API, findings and the coder's response,
scores; the coder's "My reviews" pages and the supervisor's scores page with its CSV.

Included before the workbench router, so that `/qa/mine` and `/qa/scores` come before its
`/qa/{work_item_id}`.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session, select
from starlette.datastructures import FormData

from server.auth.deps import CoderDep, CoderOrSupervisorDep, RowId, SessionDep, SupervisorDep
from server.auth.principal import Principal
from server.csvsafe import SafeWriter
from server.errors import AppError, Forbidden, NotFound
from server.models import QaFinding, Role, User
from server.qa import scores as scores_service
from server.qa import service
from server.qa.schemas import FindingView, QaDecision, ResponseIn, ScoreView
from server.qa.service import FindingRow
from server.qa.taxonomy import taxonomy
from server.web import forms
from server.web.templates import render

router = APIRouter()

API = "/api/v1/qa"
CSV = "text/csv; charset=utf-8"
Day = Annotated[date | None, Query(description="a date (YYYY-MM-DD), inclusive")]
Username = Annotated[str | None, Query(max_length=100)]


def _finding_view(row: FindingRow) -> FindingView:
    f = row.finding
    assert f.id is not None  # noqa: S101
    return FindingView(
        id=f.id,
        review_id=f.review_id,
        work_item_id=f.work_item_id,
        coder=row.coder,
        reviewer=row.reviewer,
        kind=f.kind,
        target=f.target,
        position=f.position,
        field=f.abstract_field,
        principal=f.principal,
        category=f.category,
        category_label=row.category_label,
        status=f.status,
        at=f.at,
        responded_at=f.responded_at,
        decided_at=f.decided_at,
        coder_drg=row.review.coder_drg,
        qa_drg=row.review.qa_drg,
        payment_difference=row.review.payment_difference,
    )


def _coder_id(session: Session, *, actor: Principal, coder: str | None) -> int | None:
    """Whose scores: a coder only their own (403 for another's), a supervisor anyone's."""
    if not actor.has_role(Role.supervisor):
        if coder is not None and coder != actor.name:
            raise Forbidden("A coder sees only their own QA scores.")
        return actor.user_id
    if coder is None:
        return None
    found = session.exec(select(User.id).where(User.username == coder)).first()
    if found is None:
        raise NotFound("No such coder.")
    return found


# ---------------------------------------------------------------- API


@router.post(f"{API}/{{work_item_id}}", tags=["qa"])
def api_qa_decide(
    session: SessionDep, actor: SupervisorDep, work_item_id: RowId, body: QaDecision
) -> dict[str, Any]:
    """Accept, or correct with one categorised finding per derived difference; to billing."""
    item = service.decide(
        session,
        actor=actor,
        work_item_id=work_item_id,
        decision=body.decision,
        reason=body.reason,
        codes=body.codes,
        abstract=body.abstract,
        findings=body.findings,
    )
    return {"id": item.id, "status": item.status}


@router.post(f"{API}/{{work_item_id}}/retrospective", tags=["qa"])
def api_qa_retrospective(
    session: SessionDep, actor: SupervisorDep, work_item_id: RowId
) -> dict[str, Any]:
    """Send a billed chart to a retrospective QA review (422 if it is not billed): accepted,
    it returns to billed; corrected, its next claim is a replacement of the one billed."""
    item = service.send_retrospective(session, actor=actor, work_item_id=work_item_id)
    return {"id": item.id, "status": item.status}


@router.get(f"{API}/findings", tags=["qa"])
def api_findings(
    session: SessionDep,
    actor: CoderOrSupervisorDep,
    coder: Username = None,
    status: Annotated[str | None, Query(max_length=12)] = None,
) -> dict[str, Any]:
    """QA findings, newest first (a coder sees only their own); no codes (they are sealed)."""
    rows = service.list_findings(session, actor=actor, coder=coder, status=status)
    return {
        "items": [_finding_view(r).model_dump(mode="json") for r in rows],
        "next_cursor": None,
    }


@router.post(f"{API}/findings/{{finding_id}}/response", tags=["qa"])
def api_respond(
    session: SessionDep, actor: CoderDep, finding_id: RowId, body: ResponseIn
) -> dict[str, Any]:
    """The coder agrees with a finding on their chart, or rebuts it with a reason."""
    finding = service.respond(
        session, actor=actor, finding_id=finding_id, agree=body.agree, reason=body.reason
    )
    return {"id": finding.id, "status": finding.status}


@router.get(f"{API}/scores", tags=["qa"], response_model=ScoreView)
def api_scores(
    session: SessionDep,
    actor: CoderOrSupervisorDep,
    coder: Username = None,
    since: Day = None,
    until: Day = None,
) -> ScoreView:
    """Accuracy from final decisions (percent); a coder gets only their own."""
    coder_id = _coder_id(session, actor=actor, coder=coder)
    score = scores_service.scores(session, coder_id=coder_id, since=since, until=until)
    total = score[0] if score else scores_service.Score(key=None)
    name = coder if coder is not None else (None if coder_id is None else actor.name)
    return ScoreView(
        coder=name,
        records_reviewed=total.records_reviewed,
        record_accuracy=total.record_accuracy,
        code_accuracy=total.code_accuracy,
        principal_accuracy=total.principal_accuracy,
        drg_accuracy=total.drg_accuracy,
    )


# ---------------------------------------------------------------- the coder's pages


@router.get("/qa/mine", response_class=HTMLResponse)
def my_reviews_page(request: Request, session: SessionDep, actor: CoderDep) -> Response:
    """My reviews: the coder's reviewed charts, their findings and their own scores."""
    return render(
        request,
        "qa/mine.html",
        {
            "reviews": service.my_reviews(session, actor=actor),
            "findings": service.list_findings(session, actor=actor),
            "score": scores_service.scores(session, coder_id=actor.user_id)[0],
        },
    )


def _review_page(
    request: Request,
    session: Session,
    *,
    actor: Principal,
    review_id: int,
    error: AppError | None = None,
    finding_id: int | None = None,
    kept: dict[str, str] | None = None,
) -> Response:
    opened = service.open_review(session, actor=actor, review_id=review_id)
    return render(
        request,
        "qa/review.html",
        {
            "opened": opened,
            "error": forms.message(error) if error else None,
            "errors": forms.field_errors(error),
            "error_finding": finding_id,
            "kept": kept or {},
            # A refused answer shows at the review's address, not the form's action.
            "page_url": f"/qa/reviews/{review_id}" if error else None,
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/qa/reviews/{review_id}", response_class=HTMLResponse)
def review_page(
    request: Request, session: SessionDep, actor: CoderOrSupervisorDep, review_id: RowId
) -> Response:
    """One review's findings with the codes before and after (an audited use): the coder
    answers each; a second supervisor decides a rebuttal."""
    return _review_page(request, session, actor=actor, review_id=review_id)


def _finding_failed(request: Request, session: Session, exc: AppError, form: FormData) -> Response:
    """The review page again, the message at the finding and the reason as typed."""
    finding_id = int(request.path_params["finding_id"])
    rows = session.exec(select(QaFinding.review_id).where(QaFinding.id == finding_id)).first()
    if rows is None:
        raise exc
    return _review_page(
        request,
        session,
        actor=request.state.principal,
        review_id=rows,
        error=exc,
        finding_id=finding_id,
        kept={"reason": str(form.get("reason") or "")},
    )


@router.post("/qa/findings/{finding_id}/response", response_class=HTMLResponse)
def respond_page(
    session: SessionDep,
    actor: CoderDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_finding_failed))],
    finding_id: RowId,
    agree: Annotated[bool, Form()],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Agree or rebut from the review page; a refusal shows it again with the reason kept."""
    finding = service.respond(
        session, actor=actor, finding_id=finding_id, agree=agree, reason=reason
    )
    return RedirectResponse(f"/qa/reviews/{finding.review_id}", status_code=303)


@router.post("/qa/findings/{finding_id}/decision", response_class=HTMLResponse)
def decide_page(
    session: SessionDep,
    actor: SupervisorDep,
    _form: Annotated[None, Depends(forms.ErrorPage(_finding_failed))],
    finding_id: RowId,
    decision: Annotated[str, Form(max_length=10, pattern="^(uphold|overturn)$")],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """A second supervisor upholds or overturns a rebuttal: final and recorded."""
    finding = service.decide_rebuttal(
        session, actor=actor, finding_id=finding_id, uphold=decision == "uphold", reason=reason
    )
    return RedirectResponse(f"/qa/reviews/{finding.review_id}", status_code=303)


# ---------------------------------------------------------------- the supervisor's page

GROUP_NAMES = {"coder": "Coder", "queue": "Queue", "class": "Encounter class", "month": "Month"}
COLUMNS = [
    "group",
    "key",
    "records_reviewed",
    "record_accuracy",
    "code_accuracy",
    "principal_accuracy",
    "drg_accuracy",
    "payment_difference",
]


def _scores_page(
    request: Request,
    session: Session,
    *,
    by: str,
    since: date | None,
    until: date | None,
    error: AppError | None = None,
) -> Response:
    rows = [] if error else scores_service.scores(session, by=by, since=since, until=until)
    return render(
        request,
        "qa/scores.html",
        {
            "rows": rows,
            "by": by,
            "groups": GROUP_NAMES,
            "taxonomy": taxonomy(),
            "since": since.isoformat() if since else "",
            "until": until.isoformat() if until else "",
            "rebuttals": service.list_findings(
                session, actor=request.state.principal, status="rebutted"
            ),
            "recent": service.list_findings(session, actor=request.state.principal)[:50],
            "error": forms.message(error) if error else None,
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/qa/scores", response_class=HTMLResponse)
def scores_page(
    request: Request,
    session: SessionDep,
    _: SupervisorDep,
    by: Annotated[str, Query(max_length=10)] = "coder",
    since: Day = None,
    until: Day = None,
) -> Response:
    """QA scores per coder, queue, encounter class or month; rebuttals waiting; CSV."""
    forms.on_error(
        request,
        lambda req, s, exc, _f: _scores_page(req, s, by="coder", since=None, until=None, error=exc),
    )
    return _scores_page(request, session, by=by, since=since, until=until)


@router.get("/qa/scores.csv")
def scores_csv(
    session: SessionDep,
    _: SupervisorDep,
    by: Annotated[str, Query(max_length=10)] = "coder",
    since: Day = None,
    until: Day = None,
) -> Response:
    """The scores page's table as CSV (accuracy in percent)."""
    rows = scores_service.scores(session, by=by, since=since, until=until)
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(COLUMNS)
    for s in rows:
        writer.writerow(
            [
                by,
                s.key or "",
                s.records_reviewed,
                s.record_accuracy,
                s.code_accuracy,
                s.principal_accuracy,
                s.drg_accuracy,
                round(s.payment_difference, 2),
            ]
        )
    return Response(
        out.getvalue(),
        media_type=CSV,
        headers={"Content-Disposition": f'attachment; filename="qa-scores-by-{by}.csv"'},
    )
