"""`open_chart`: the chart for every caller, under one audited view (record, codes, checks,
return note, physician queries and their answers).

Which item a caller may open, and for what, depends on the view:

- `coding`: the coder's workbench; the item must be leased to the caller (purpose TREAT).
- `qa`: a supervisor's QA review of an item waiting for it (purpose HOPERAT).
- `emergency`: break-glass, any item, with a listed reason (purpose ETREAT; flagged).
- `returned`: the coder's own item returned by billing or denied by the payer, to read why
  before resuming it (purpose TREAT); the item page shows only the return, not the chart.

The record is opened through `records.service.open_record`, which audits the view before it
decrypts and hands back the `ItemKey` that opens the item's other sealed fields here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import bindparam, select
from sqlmodel import Session, col
from starlette.concurrency import run_in_threadpool

from server.auth.deps import InStatementCaller
from server.auth.principal import Principal
from server.billing import service as billing_service
from server.billing.service import ReturnNote
from server.coding import abstract as abstract_service
from server.coding import codesets
from server.coding import service as coding_service
from server.coding.abstract import Abstract
from server.coding.schemas import Codes, DrgView
from server.db import AsyncPool
from server.edits import drg as drg_service
from server.errors import AppError
from server.models import (
    ClaimReturn,
    ItemAbstract,
    ItemCodes,
    PhysicianQuery,
    Queue,
    Status,
    User,
    WorkItem,
)
from server.qa import service as qa_service
from server.queries import service as queries_service
from server.queries.schemas import ProviderView, QueryView
from server.queue import service as queue_service
from server.queue.service import ItemRow
from server.records import service as records_service
from server.records.schemas import RecordView

ChartKind = Literal["coding", "qa", "emergency", "returned"]


@dataclass(frozen=True)
class ChartView:
    """One chart as every page and answer shows it (in memory only, never stored)."""

    row: ItemRow
    record: RecordView
    codes: Codes
    problems: coding_service.Validation | None  # the checks, when asked for
    inpatient: bool
    returned: ReturnNote | None
    queries: list[QueryView]  # the item's physician queries and their answers
    providers: list[ProviderView]  # the encounter's practitioners, who may be queried
    titles: dict[str, str]  # each code's description, 'SYSTEM:CODE' as on the lines
    drg: DrgView | None  # the working MS-DRG of the saved codes (None: outpatient)
    abstract: Abstract  # the inpatient abstract (NUBC admission and discharge codes)
    # QA findings on this chart, opened under the same view (the item page; else empty).
    qa_findings: list[qa_service.OpenedFinding]

    @property
    def item(self) -> WorkItem:
        """The work item (read once, locked for the request on the coder's view)."""
        return self.row.item


@dataclass(frozen=True)
class ItemPage:
    """The coder's item page: the item, and its chart while it is leased to them."""

    row: ItemRow
    chart: ChartView | None
    # Why a returned item came back (the sealed note, the payer's denial), read through the
    # audited "returned" view before the coder resumes it (None: not returned).
    returned: ReturnNote | None = None


def _checked_item(
    session: Session, *, actor: Principal, work_item_id: int, view: ChartKind
) -> WorkItem | None:
    """The item if the caller may open it in this view (None: open_record decides)."""
    if view == "coding":
        return queue_service.leased_item(session, actor=actor, work_item_id=work_item_id)
    if view == "qa":
        return coding_service.qa_item(session, actor=actor, work_item_id=work_item_id)
    if view == "returned":
        return queue_service.my_item(session, actor=actor, work_item_id=work_item_id)
    return None


# What a chart shows of the item beside the record, read once: its queue's name, its
# holder's username (queue_service.item_row's names), its sealed codes and abstract (the
# rows coding_service.get_codes and abstract.get_abstract read) and its latest return
# (billing_service.last_return's row), and whether it has physician queries to read (most
# have none: then item_queries is skipped). Five statements before; one now (issue 23).
_OWNER = User.__table__.alias("owner")  # type: ignore[attr-defined]
_CHART_PARTS = (
    select(
        col(Queue.name),
        _OWNER.c.username,
        col(ItemCodes.sealed_lines),
        col(ItemAbstract.sealed_abstract),
        ClaimReturn,
        select(col(PhysicianQuery.id))
        .where(col(PhysicianQuery.work_item_id) == col(WorkItem.id))
        .exists()
        .label("has_queries"),
    )
    .select_from(WorkItem)
    .join(Queue, col(Queue.id) == col(WorkItem.queue_id))
    .outerjoin(_OWNER, _OWNER.c.id == col(WorkItem.lease_owner_id))
    .outerjoin(ItemCodes, col(ItemCodes.work_item_id) == col(WorkItem.id))
    .outerjoin(ItemAbstract, col(ItemAbstract.work_item_id) == col(WorkItem.id))
    .outerjoin(ClaimReturn, col(ClaimReturn.id) == billing_service.LATEST_RETURN_ID)
    .where(col(WorkItem.id) == bindparam("item_id"))
)


def open_chart(
    session: Session,
    *,
    actor: Principal,
    work_item_id: int,
    purpose: str,
    view: ChartKind,
    emergency_reason: str | None = None,
    checks: bool = False,
    findings: bool = False,
) -> ChartView:
    """The chart of a work item, if `actor` may open it in `view`; the view audited first.

    `checks`: also run the code checks on the saved codes (what the code panel shows).
    `findings`: also open the item's QA findings (what the coder's item page shows).
    """
    item = _checked_item(session, actor=actor, work_item_id=work_item_id, view=view)
    opened = records_service.open_record(
        session=session,
        actor=actor,
        work_item_id=work_item_id,
        purpose=purpose,
        view="returned" if view == "returned" else "coding",
        emergency_reason=emergency_reason if view == "emergency" else None,
    )
    if item is None:
        item = session.get(WorkItem, work_item_id)
        assert item is not None  # noqa: S101 - open_record found it
    # The queue and holder names and the sealed parts in one round trip (issue 23).
    queue, owner, sealed_lines, sealed_abstract, back, has_queries = session.execute(
        _CHART_PARTS, {"item_id": work_item_id}
    ).one()
    codes = coding_service.open_codes(key=opened.key, sealed=sealed_lines)
    abstract = abstract_service.open_abstract(key=opened.key, sealed=sealed_abstract)  # once
    assert opened.encounter is not None  # noqa: S101 - open_record hands it over
    # The same context as the one-trip view's: the encounter row is in hand, nothing is read.
    context = coding_service.record_context(
        opened.encounter, record=opened.record, abstract=abstract
    )
    problems = coding_service.validate(session, codes=codes, context=context) if checks else None
    return ChartView(
        row=ItemRow(item=item, queue=queue, owner=owner),
        record=opened.record,
        codes=codes,
        problems=problems,
        inpatient=context.inpatient,
        returned=billing_service.open_return(session, key=opened.key, back=back),
        queries=queries_service.item_queries(session, key=opened.key) if has_queries else [],
        providers=queries_service.encounter_providers(session, encounter_id=item.encounter_id),
        # The code panel's descriptions: only where it is shown (not the API's answer).
        titles=codesets.titles(session, codes=codes) if checks else {},
        drg=problems.drg if problems else coding_service.working_drg(codes, context),
        abstract=abstract,
        qa_findings=[
            qa_service.open_finding(key=opened.key, row=row)
            for row in qa_service.item_findings(session, work_item_id=work_item_id)
        ]
        if findings
        else [],
    )


async def coding_chart_in_one_trip(
    pool: AsyncPool, *, caller: InStatementCaller, work_item_id: int
) -> ChartView | None:
    """`open_chart(view="coding")` as the coder's API reads it (no checks, no findings) in one
    statement on the event loop (`records_service.open_record_in_one_trip`; issue 23).

    None: nothing was written; the caller takes the ordinary path (`open_chart`), which
    answers every refusal and every chart this one does not open (physician queries, a
    billing return) as it always has.
    """
    found = await records_service.open_record_in_one_trip(
        pool, caller=caller, work_item_id=work_item_id
    )
    if found is None:
        return None
    opened, read = found
    assert opened.encounter is not None  # noqa: S101 - the one-trip read hands it over
    try:
        codes = coding_service.open_codes(key=opened.key, sealed=read.sealed_lines)
        abstract = abstract_service.open_abstract(key=opened.key, sealed=read.sealed_abstract)
    except AppError as exc:  # the view event committed with the read: the failure follows it
        await records_service.audit_failed_view(
            read, patient_id=opened.record.patient_id, code=exc.code
        )
        raise
    context = coding_service.record_context(
        opened.encounter, record=opened.record, abstract=abstract
    )
    if drg_service.groups(codes, inpatient=context.inpatient):  # the grouper: in a thread
        drg = await run_in_threadpool(coding_service.working_drg, codes, context)
    else:
        drg = coding_service.working_drg(codes, context)
    return ChartView(
        row=ItemRow(item=read.item, queue=read.queue, owner=read.holder),
        record=opened.record,
        codes=codes,
        problems=None,
        inpatient=context.inpatient,
        returned=None,  # an item with a return takes the ordinary path
        queries=[],  # so does one with physician queries
        providers=[ProviderView(npi=npi, name=name) for npi, name in read.providers],
        titles={},
        drg=drg,
        abstract=abstract,
        qa_findings=[],
    )


def item_page(session: Session, *, actor: Principal, work_item_id: int) -> ItemPage:
    """The coder's page of an item in their list; the chart only while they hold its lease."""
    item = queue_service.my_item(session, actor=actor, work_item_id=work_item_id)
    if item.status == Status.returned:  # why it came back, shown beside Resume (audited)
        back = open_chart(
            session, actor=actor, work_item_id=work_item_id, purpose="TREAT", view="returned"
        )
        return ItemPage(row=back.row, chart=None, returned=back.returned)
    if item.status != Status.in_progress:
        return ItemPage(row=queue_service.item_row(session, item=item), chart=None)
    chart = open_chart(
        session,
        actor=actor,
        work_item_id=work_item_id,
        purpose="TREAT",
        view="coding",
        checks=True,
        findings=True,
    )
    return ItemPage(row=chart.row, chart=chart)
