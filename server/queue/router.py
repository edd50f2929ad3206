"""HTTP routes of the queue domain: coder and supervisor pages, and /api/v1 JSON."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Body, Depends, Form, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session
from starlette.datastructures import FormData

from server.auth.deps import (
    MAX_ROW_ID,
    CoderDep,
    CoderInStatementDep,
    CoderOrSupervisorDep,
    PendingCheck,
    RowId,
    SessionDep,
    SupervisorDep,
    client_ip,
    request_id,
)
from server.auth.principal import Principal
from server.db import async_pool, session_scope
from server.errors import AppError
from server.models import Role, Status, WorkItem
from server.models.base import utcnow
from server.queue import service
from server.queue.schemas import (
    AssignRequest,
    HoldRequest,
    MembersRequest,
    MembersView,
    MoveRequest,
    NextRequest,
    PriorityRequest,
    QueueCreate,
    QueueList,
    QueueView,
    WorkItemList,
    WorkItemView,
)
from server.web import forms
from server.web.templates import render

router = APIRouter()

API = "/api/v1"


def _view(session: Session, item: WorkItem) -> WorkItemView:
    return WorkItemView.of(service.item_row(session, item=item))


# ---------------------------------------------------------------- coder API


@router.post(
    f"{API}/work/next",
    tags=["work"],
    response_model=WorkItemView,
    responses={204: {"description": "Nothing is waiting in the caller's queues."}},
)
async def api_next(
    caller: CoderInStatementDep, body: Annotated[NextRequest | None, Body()] = None
) -> Any:
    """Lease the next item (or return the one already held); 204 when nothing is waiting.

    PostgreSQL with a cookie session: one statement on the event loop (session check, claim,
    item event, audit row; issue 23). A refusal there, a bearer token or SQLite: the ordinary
    access rule and claim in one worker-thread call.
    """
    queue = body.queue if body else None
    request = caller.request
    pool = async_pool()
    session_hash = caller.session_hash() if pool is not None else None
    if pool is not None and session_hash is not None and caller.csrf:
        found = await service.claim_next_in_one_trip(
            pool,
            session_hash=session_hash,
            csrf=caller.csrf,
            role=Role.coder,
            activity=caller.activity,
            queue=queue,
            ip=client_ip(request),
            ua=request.headers.get("user-agent"),
            request_id=request_id(request),
        )
        if found is None:
            return Response(status_code=204)
        if isinstance(found, dict):
            request.state.access_granted = True
            body_json = WorkItemView(**found).model_dump_json()
            return Response(body_json, media_type="application/json")
    return await run_in_threadpool(_next_plain, caller, queue)


def _next_plain(caller: PendingCheck, queue: str | None) -> Any:
    with session_scope() as session:
        actor = caller.check(session)
        row = service.claim_next(session, actor=actor, queue=queue)
        return Response(status_code=204) if row is None else WorkItemView.of(row)


@router.get(f"{API}/work/mine", tags=["work"], response_model=WorkItemList)
def api_mine(session: SessionDep, actor: CoderDep) -> WorkItemList:
    """The caller's leased, held and returned items."""
    rows = service.my_items(session, actor=actor)
    return WorkItemList(items=[WorkItemView.of(r) for r in rows])


@router.post(f"{API}/work/{{work_item_id}}/heartbeat", tags=["work"], response_model=WorkItemView)
def api_heartbeat(session: SessionDep, actor: CoderDep, work_item_id: RowId) -> WorkItemView:
    """Extend the caller's lease; 409 lease_expired if it already ran out."""
    return _view(session, service.heartbeat(session, actor=actor, work_item_id=work_item_id))


@router.post(f"{API}/work/{{work_item_id}}/release", tags=["work"], response_model=WorkItemView)
def api_release(session: SessionDep, actor: CoderDep, work_item_id: RowId) -> WorkItemView:
    """Give the item back to its queue."""
    return _view(session, service.release(session, actor=actor, work_item_id=work_item_id))


@router.post(f"{API}/work/{{work_item_id}}/hold", tags=["work"], response_model=WorkItemView)
def api_hold(
    session: SessionDep, actor: CoderDep, work_item_id: RowId, body: HoldRequest
) -> WorkItemView:
    """Put the item on hold (reason from the configured list; the note is not stored)."""
    item = service.hold(
        session, actor=actor, work_item_id=work_item_id, reason=body.reason, note=body.note
    )
    return _view(session, item)


@router.post(f"{API}/work/{{work_item_id}}/resume", tags=["work"], response_model=WorkItemView)
def api_resume(
    session: SessionDep, actor: CoderOrSupervisorDep, work_item_id: RowId
) -> WorkItemView:
    """Take a held or returned item back into work (its holder, or a supervisor)."""
    return _view(session, service.resume(session, actor=actor, work_item_id=work_item_id))


# ---------------------------------------------------------------- supervisor API


@router.get(f"{API}/queues", tags=["queues"], response_model=QueueList)
def api_queues(session: SessionDep, _: SupervisorDep) -> QueueList:
    """Every queue with ready, in progress, on hold, oldest ready age and done today."""
    service.sweep_expired(session)
    return QueueList(items=[QueueView.of(s) for s in service.queue_stats(session)])


@router.post(f"{API}/queues", tags=["queues"], status_code=201, response_model=MembersView)
def api_create_queue(session: SessionDep, actor: SupervisorDep, body: QueueCreate) -> MembersView:
    """Create a queue."""
    queue = service.create_queue(session, name=body.name, description=body.description, actor=actor)
    return MembersView(name=queue.name, members=[])


@router.put(f"{API}/queues/{{name}}/members", tags=["queues"], response_model=MembersView)
def api_set_members(
    session: SessionDep, actor: SupervisorDep, name: str, body: MembersRequest
) -> MembersView:
    """Replace the members of a queue."""
    members = service.set_members(session, actor=actor, queue_name=name, usernames=body.usernames)
    return MembersView(name=name, members=members)


@router.get(f"{API}/work", tags=["queues"], response_model=WorkItemList)
def api_items(
    session: SessionDep,
    _: SupervisorDep,
    queue: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    coder: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> WorkItemList:
    """Work items newest first, filtered by queue, status and coder (keyset pagination)."""
    rows, next_cursor = service.list_items(
        session, queue=queue, status=status, coder=coder, cursor=cursor, limit=limit
    )
    return WorkItemList(items=[WorkItemView.of(r) for r in rows], next_cursor=next_cursor)


@router.post(f"{API}/work/{{work_item_id}}/assign", tags=["queues"], response_model=WorkItemView)
def api_assign(
    session: SessionDep, actor: SupervisorDep, work_item_id: RowId, body: AssignRequest
) -> WorkItemView:
    """Lease an item straight to a coder (reassigns if someone else holds it)."""
    item = service.assign(session, actor=actor, work_item_id=work_item_id, username=body.username)
    return _view(session, item)


@router.post(f"{API}/work/{{work_item_id}}/move", tags=["queues"], response_model=WorkItemView)
def api_move(
    session: SessionDep, actor: SupervisorDep, work_item_id: RowId, body: MoveRequest
) -> WorkItemView:
    """Move an item to another queue."""
    item = service.move(session, actor=actor, work_item_id=work_item_id, queue=body.queue)
    return _view(session, item)


@router.post(f"{API}/work/{{work_item_id}}/priority", tags=["queues"], response_model=WorkItemView)
def api_priority(
    session: SessionDep, actor: SupervisorDep, work_item_id: RowId, body: PriorityRequest
) -> WorkItemView:
    """Change an item's priority."""
    item = service.set_priority(
        session, actor=actor, work_item_id=work_item_id, priority=body.priority
    )
    return _view(session, item)


# ---------------------------------------------------------------- coder pages


def _my_work_page(
    request: Request,
    session: Session,
    actor: Principal,
    *,
    message: str | None = None,
    error: str | None = None,
    submitted: bool = False,
    status_code: int = 200,
) -> Response:
    rows = service.my_items(session, actor=actor)
    return render(
        request,
        "queue/my_work.html",
        {
            "rows": rows,
            "encounters": service.encounters_of(session, rows=rows),
            "queues": service.queues_of(session, user_id=service.user_id_of(actor)),
            "message": message,
            "error": error,
            "submitted": submitted,
            "now": utcnow(),
            # A refused form posted from it (Resume) shows again at /work, not at its action.
            "page_url": "/work" if error else None,
        },
        status_code=status_code,
    )


WENT_TO = {Status.qa_review: "QA review", Status.ready_for_billing: "billing"}


@router.get("/work", response_class=HTMLResponse)
def my_work(
    request: Request,
    session: SessionDep,
    actor: CoderDep,
    submitted: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    to: Annotated[Status | None, Query()] = None,
    warnings: Annotated[int, Query(ge=0, le=1000)] = 0,
) -> Response:
    """My work: leased, held and returned items; after a Submit, where that chart went."""
    message = None
    if submitted is not None:
        went = WENT_TO.get(to, "its next step") if to else "its next step"
        message = f"Chart #{submitted} submitted: it went to {went}"
        if warnings:
            message += f", with {warnings} warning{'s' if warnings != 1 else ''} noted"
        message += "."
    return _my_work_page(request, session, actor, message=message, submitted=message is not None)


@router.post("/work/next", response_class=HTMLResponse)
def next_page(request: Request, session: SessionDep, actor: CoderDep) -> Response:
    """The Next button: open the next item, or say nothing is waiting."""
    row = service.claim_next(session, actor=actor)
    if row is None:
        return _my_work_page(
            request, session, actor, message="Nothing is waiting in your queues right now."
        )
    return RedirectResponse(f"/work/{row.item.id}", status_code=303)


@router.post("/work/{work_item_id}/heartbeat", response_class=HTMLResponse)
def heartbeat_page(
    request: Request, session: SessionDep, actor: CoderDep, work_item_id: RowId
) -> Response:
    """Sent by the open item page every minute: extend the lease, show the new end."""
    item = service.heartbeat(session, actor=actor, work_item_id=work_item_id)
    return render(
        request,
        "queue/item.html",
        {"row": service.item_row(session, item=item), "now": utcnow()},
        block="lease",
    )


@router.post("/work/{work_item_id}/release", response_class=HTMLResponse)
def release_page(session: SessionDep, actor: CoderDep, work_item_id: RowId) -> Response:
    """Give the item back and return to My work."""
    service.release(session, actor=actor, work_item_id=work_item_id)
    return RedirectResponse("/work", status_code=303)


@router.post("/work/{work_item_id}/hold", response_class=HTMLResponse)
def hold_page(
    session: SessionDep,
    actor: CoderDep,
    work_item_id: RowId,
    reason: Annotated[str, Form(max_length=100)],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Put the item on hold and return to My work."""
    service.hold(session, actor=actor, work_item_id=work_item_id, reason=reason, note=note)
    return RedirectResponse("/work", status_code=303)


def _resume_refused(request: Request, session: Session, exc: AppError, _form: FormData) -> Response:
    """My work again (at /work) saying why the chart was not resumed."""
    item_id = request.path_params["work_item_id"]
    error = f"Chart #{item_id} was not resumed: {exc.message}"
    return _my_work_page(
        request, session, request.state.principal, error=error, status_code=exc.status_code
    )


@router.post("/work/{work_item_id}/resume", response_class=HTMLResponse)
def resume_page(
    request: Request, session: SessionDep, actor: CoderDep, work_item_id: RowId
) -> Response:
    """Take a held or returned item back and open it; if refused, My work says why."""
    forms.on_error(request, _resume_refused)
    service.resume(session, actor=actor, work_item_id=work_item_id)
    return RedirectResponse(f"/work/{work_item_id}", status_code=303)


# ---------------------------------------------------------------- supervisor pages


DONE_MESSAGES = {
    "queue": "Queue created.",
    "members": "Members saved.",
    "assign": "Item assigned.",
    "move": "Item moved.",
    "priority": "Priority changed.",
    "resume": "Item resumed.",
    "bulk-assign": "Selected items assigned.",
    "bulk-move": "Selected items moved.",
    "bulk-priority": "Priority of the selected items changed.",
}


def _supervise_page(
    request: Request,
    session: Session,
    *,
    flt: service.ItemFilter,
    message: str | None = None,
    error: str | None = None,
    status_code: int = 200,
    extra: dict[str, Any] | None = None,
) -> Response:
    service.sweep_expired(session)
    try:
        page: service.ItemPage | None = service.supervised_items(session, flt=flt)
    except AppError as exc:
        page, error = None, forms.message(exc)
        status_code = exc.status_code if status_code == 200 else status_code
    return render(
        request,
        "queue/supervise.html",
        {
            # The version first: a change between the two shows at the next poll, not never.
            "stats_version": service.stats_version(session),
            "stats": service.queue_stats(session),
            "page": page,
            "filters": flt,
            "sorts": service.SORTS,
            "statuses": [s.value for s in Status],
            "coders": service.coders(session),
            "choices": service.filter_choices(session),
            "message": message,
            "error": error,
            "now": utcnow(),
            **(extra or {}),
        },
        status_code=status_code,
    )


Text = Annotated[str, Query(max_length=100)]


@router.get("/supervise", response_class=HTMLResponse)
def supervise(
    request: Request,
    session: SessionDep,
    _: SupervisorDep,
    queue: Text = "",
    status: Text = "",
    coder: Text = "",
    encounter_class: Annotated[str, Query(alias="class", max_length=40)] = "",
    payer_class: Text = "",
    sort: Annotated[str, Query(max_length=20)] = "due",
    direction: Annotated[str, Query(alias="dir", max_length=4)] = "asc",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The supervisor dashboard: queue figures, the item list (filtered, sorted, in pages of
    50 with a total) and the forms."""
    flt = service.ItemFilter(
        queue=queue.strip(),
        status=status.strip(),
        coder=coder.strip(),
        encounter_class=encounter_class.strip(),
        payer_class=payer_class.strip(),
        sort=sort,
        direction=direction,
        page=page,
    )
    return _supervise_page(request, session, flt=flt, message=DONE_MESSAGES.get(done or ""))


@router.get("/supervise/items/{work_item_id}", response_class=HTMLResponse)
def item_history_page(
    request: Request, session: SessionDep, _: SupervisorDep, work_item_id: RowId
) -> Response:
    """One item: its encounter's metadata (no patient data) and every event with who and when."""
    history = service.item_history(session, work_item_id=work_item_id)
    return render(request, "queue/history.html", {"h": history, "now": utcnow()})


@router.get("/supervise/stats", response_class=HTMLResponse)
def supervise_stats(
    request: Request,
    session: SessionDep,
    _: SupervisorDep,
    v: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """The dashboard's figures alone (the page polls this every 10 seconds).

    The page sends the version of the figures it shows (`v`); while nothing changed the
    answer is 204 No Content (htmx keeps what is shown) after a cheap change check, not a
    recount.
    """
    service.sweep_expired(session)
    version = service.stats_version(session)
    if v and v == version:
        return Response(status_code=204)
    return render(
        request,
        "queue/_stats.html",
        {"stats": service.queue_stats(session), "stats_version": version},
    )


def _list_filter(form: FormData | None) -> service.ItemFilter:
    """The list's filters a dashboard form carried (its `list` field: the list's query)."""
    raw = str(form.get("list", "") if form is not None else "")[:1000]
    got = {k: v[0][:100].strip() for k, v in parse_qs(raw).items() if v}
    page = got.get("page", "1")
    return service.ItemFilter(
        queue=got.get("queue", ""),
        status=got.get("status", ""),
        coder=got.get("coder", ""),
        encounter_class=got.get("class", ""),
        payer_class=got.get("payer_class", ""),
        sort=got.get("sort", "due"),
        direction=got.get("dir", "asc"),
        page=int(page) if page.isdigit() and 0 < int(page) <= 1_000_000 else 1,
    )


def _failed(request: Request, session: Session, exc: AppError, form: FormData) -> Response:
    """The dashboard again at the list's own address, filters kept, with why the form failed
    (its changes rolled back) and, for the bulk form, what was chosen."""
    flt = _list_filter(form)
    query = urlencode(flt.query())
    bulk = {
        "action": str(form.get("action", "")),
        "username": str(form.get("username", "")),
        "queue": str(form.get("queue", "")),
        "priority": str(form.get("priority", ""))[:10],
        "ids": [str(i) for i in form.getlist("ids")][:1000],
    }
    return _supervise_page(
        request,
        session,
        flt=flt,
        error=forms.message(exc),
        status_code=exc.status_code,
        extra={
            "page_url": "/supervise" + (f"?{query}" if query else ""),
            "bulk": bulk if request.url.path.endswith("/bulk") else {},
        },
    )


# Declared after the access rule and before the fields: a bad field shows the dashboard too.
DashboardForm = Annotated[None, Depends(forms.ErrorPage(_failed))]


def _done(request: Request, done: str) -> Response:
    """Back to the list, with the filters it had, saying what was done."""
    form = getattr(request.state, "form_data", None)
    if form is None or not form.get("list"):
        return RedirectResponse(f"/supervise?done={done}", status_code=303)
    query = urlencode({**_list_filter(form).query(), "done": done})
    return RedirectResponse(f"/supervise?{query}", status_code=303)


@router.post("/supervise/queues", response_class=HTMLResponse)
def create_queue_page(
    request: Request,
    session: SessionDep,
    actor: SupervisorDep,
    _form: DashboardForm,
    name: Annotated[str, Form(max_length=64)],
    description: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Create a queue from the dashboard."""
    service.create_queue(session, name=name, description=description, actor=actor)
    return _done(request, "queue")


@router.post("/supervise/queues/{name}/members", response_class=HTMLResponse)
def members_page(
    request: Request,
    session: SessionDep,
    actor: SupervisorDep,
    _form: DashboardForm,
    name: str,
    usernames: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Replace a queue's members from the dashboard's checkboxes."""
    service.set_members(session, actor=actor, queue_name=name, usernames=usernames or [])
    return _done(request, "members")


@router.post("/supervise/items/{work_item_id}/assign", response_class=HTMLResponse)
def assign_page(
    request: Request,
    session: SessionDep,
    actor: SupervisorDep,
    _form: DashboardForm,
    work_item_id: RowId,
    username: Annotated[str, Form(max_length=64)],
) -> Response:
    """Assign (or reassign) an item from the dashboard."""
    service.assign(session, actor=actor, work_item_id=work_item_id, username=username)
    return _done(request, "assign")


@router.post("/supervise/items/{work_item_id}/move", response_class=HTMLResponse)
def move_page(
    request: Request,
    session: SessionDep,
    actor: SupervisorDep,
    _form: DashboardForm,
    work_item_id: RowId,
    queue: Annotated[str, Form(max_length=64)],
) -> Response:
    """Move an item to another queue from the dashboard."""
    service.move(session, actor=actor, work_item_id=work_item_id, queue=queue)
    return _done(request, "move")


@router.post("/supervise/items/{work_item_id}/priority", response_class=HTMLResponse)
def priority_page(
    request: Request,
    session: SessionDep,
    actor: SupervisorDep,
    _form: DashboardForm,
    work_item_id: RowId,
    priority: Annotated[int, Form(ge=-1000, le=1000)],
) -> Response:
    """Change an item's priority from the dashboard."""
    service.set_priority(session, actor=actor, work_item_id=work_item_id, priority=priority)
    return _done(request, "priority")


@router.post("/supervise/items/{work_item_id}/resume", response_class=HTMLResponse)
def supervisor_resume_page(
    request: Request,
    session: SessionDep,
    actor: SupervisorDep,
    _form: DashboardForm,
    work_item_id: RowId,
) -> Response:
    """Resume a held item from the dashboard (it goes back to its holder)."""
    service.resume(session, actor=actor, work_item_id=work_item_id)
    return _done(request, "resume")


@router.post("/supervise/items/bulk", response_class=HTMLResponse)
def bulk_page(
    request: Request,
    session: SessionDep,
    actor: SupervisorDep,
    _form: DashboardForm,
    action: Annotated[str, Form(max_length=20)],
    ids: Annotated[list[int] | None, Form()] = None,
    username: Annotated[str, Form(max_length=64)] = "",
    queue: Annotated[str, Form(max_length=64)] = "",
    priority: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Assign, move or reprioritise the selected items at once (all or none)."""
    value = int(priority) if priority.strip().lstrip("-").isdigit() else None
    service.bulk_change(
        session,
        actor=actor,
        work_item_ids=[i for i in ids or [] if 1 <= i <= MAX_ROW_ID],
        action=action,
        username=username,
        queue=queue,
        priority=value,
    )
    return _done(request, f"bulk-{action}")
