"""Physician queries: a coder asks a provider of the encounter, compliantly; the provider
answers (signed); the item goes back to its coder; unanswered queries escalate.

Compliance (AHIMA/ACDIS "Guidelines for Achieving a Compliant Query Practice", 2022): every
query quotes clinical indicators from the chart; a multiple-choice query offers "other" and
"clinically undetermined"; a yes/no query is only for present-on-admission or a diagnosis
documented elsewhere; no query leads the provider or names payment.

The question, options, quotes, the patient's name and MRN (so the provider knows whom the
query is about) and the answer are sealed under the encounter's data key. They open only
through an `ItemKey`: the chart's audited view (`item_queries`, for the coder's chart) or
`records.service.open_for_use`, audited as `query-view` / `query-answer` with the reader as
actor. A provider reaches only the queries addressed to their NPI, never the chart.
Services flush and never commit.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth import service as auth_service
from server.auth.principal import Principal, system_principal
from server.config import get_settings
from server.errors import Conflict, NotFound, ValidationFailed
from server.models import (
    EncounterProvider,
    PhysicianQuery,
    Role,
    Status,
    User,
    WorkItem,
)
from server.models.base import utcnow
from server.queries.schemas import (
    AnswerIn,
    AnswerView,
    IndicatorView,
    ProviderView,
    QueryIn,
    QuerySummary,
    QueryView,
)
from server.queue import service as queue_service
from server.records import service as records_service
from server.records.schemas import RecordView
from server.records.service import ItemKey

QUERY_HOLD_REASON = "physician query"
TABLE = "physician_query"
STATUSES = ("open", "answered", "escalated")  # escalated: open and past its deadline
REQUIRED_OPTIONS = ("other", "clinically undetermined")
YES_NO_OPTIONS = ["yes", "no", "clinically undetermined"]
MAX_QUOTE = 2000
PURPOSE = "HOPERAT"  # documentation for coding: healthcare operations

# Leading phrases: they tell the provider what to write (AHIMA/ACDIS: never lead).
LEADING_PHRASES = (
    "please document",
    "please add",
    "please confirm",
    "please consider documenting",
    "would you agree",
    "do you agree",
    "can you confirm",
    "could you confirm",
    "don't you think",
    "isn't it",
    "the patient clearly has",
)
# A query never names payment impact (question or options).
_PAYMENT = re.compile(
    r"\b(payments?|pay|paid|reimburse(d|ment|ments)?|drgs?|ms-drg|cc/mcc|mcc|revenue|"
    r"financial|dollars?|money|case mix|billing|insurance|denials?)\b|\$",
    re.IGNORECASE,
)


def _problem(loc: list[str | int], msg: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg}


def _fail(problems: list[dict[str, Any]]) -> None:
    if problems:
        raise ValidationFailed(
            f"The query has {len(problems)} problem(s); nothing was sent.", details=problems
        )


def wording_problems(data: QueryIn) -> list[dict[str, Any]]:
    """What makes a query non-compliant before the chart is opened (template, words, options)."""
    problems: list[dict[str, Any]] = []
    lowered = data.question.casefold()
    for phrase in LEADING_PHRASES:
        if phrase in lowered:
            problems.append(_problem(["question"], f'leading phrase "{phrase}": ask, never tell'))
    if _PAYMENT.search(data.question):
        problems.append(_problem(["question"], "a query never names payment or reimbursement"))
    options = [o.casefold() for o in data.options]
    if data.template == "multiple_choice":
        if len(options) < 3:
            problems.append(_problem(["options"], "give at least one clinical option"))
        for required in REQUIRED_OPTIONS:
            if required not in options:
                problems.append(_problem(["options"], f'the options must include "{required}"'))
        if len(set(options)) != len(options):
            problems.append(_problem(["options"], "each option once"))
        for n, option in enumerate(data.options):
            if _PAYMENT.search(option):
                problems.append(
                    _problem(["options", n], "an option never names payment or reimbursement")
                )
    elif data.options:
        problems.append(_problem(["options"], f"a {data.template} query takes no options"))
    if data.template == "yes_no" and data.basis is None:
        problems.append(
            _problem(
                ["basis"],
                "a yes/no query is only for present on admission (poa) or a diagnosis "
                "documented elsewhere (documented_elsewhere): say which",
            )
        )
    if data.template != "yes_no" and data.basis is not None:
        problems.append(_problem(["basis"], "only a yes/no query has a basis"))
    if not data.indicators:
        problems.append(
            _problem(["indicators"], "quote at least one clinical indicator from the chart")
        )
    return problems


def encounter_providers(session: Session, *, encounter_id: int) -> list[ProviderView]:
    """The practitioners of an encounter (NPI and name, public directory data)."""
    rows = session.execute(_PROVIDERS, {"encounter_id": encounter_id})
    return [ProviderView(npi=npi, name=name) for npi, name in rows]


# Built once (a chart view reads both): an encounter's practitioners, an item's queries.
_PROVIDERS = (
    select(col(EncounterProvider.npi), col(EncounterProvider.name))
    .where(col(EncounterProvider.encounter_id) == bindparam("encounter_id"))
    .order_by(col(EncounterProvider.id))
)
_ITEM_QUERIES = (
    select(PhysicianQuery)
    .where(col(PhysicianQuery.work_item_id) == bindparam("item_id"))
    .order_by(col(PhysicianQuery.id))
)


def _quotes(
    record: RecordView, data: QueryIn, problems: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each indicator as {document, title, date, quote}, or its problem at its place."""
    documents = {d.id: d for d in record.documents}
    quotes = []
    for n, ind in enumerate(data.indicators):
        doc = documents.get(ind.document)
        if doc is None:
            problems.append(_problem(["indicators", n, "document"], "not a document of this chart"))
            continue
        start, end = ind.start, ind.end
        if ind.quote is not None and ind.quote.strip():
            start = doc.text.find(ind.quote.strip())
            if start < 0:
                problems.append(_problem(["indicators", n, "quote"], "not found in the document"))
                continue
            end = start + len(ind.quote.strip())
        if start is None or end is None or not start < end <= len(doc.text):
            problems.append(
                _problem(["indicators", n, "end"], "start and end must lie within the document")
            )
            continue
        if end - start > MAX_QUOTE:
            problems.append(_problem(["indicators", n, "end"], f"quote at most {MAX_QUOTE} chars"))
            continue
        quote = doc.text[start:end].strip()
        if not quote:
            problems.append(_problem(["indicators", n, "end"], "the passage is blank"))
            continue
        quotes.append(
            {
                "document": doc.id,
                "title": doc.title,
                "date": doc.date.isoformat() if doc.date else None,
                "quote": quote,
            }
        )
    return quotes


def compose(
    session: Session, *, actor: Principal, work_item_id: int, data: QueryIn
) -> tuple[PhysicianQuery, WorkItem]:
    """Ask a provider of the encounter a compliant query about a leased item; hold the item.

    Checked first (422 naming each field): wording, options, basis, indicators present,
    provider on the encounter. The chart is then opened (an audited view) to quote the
    indicators, the query stored sealed, the item put on hold "physician query".
    """
    item = queue_service.leased_item(session, actor=actor, work_item_id=work_item_id)
    problems = wording_problems(data)
    npis = {p.npi: p for p in encounter_providers(session, encounter_id=item.encounter_id)}
    if data.provider not in npis:
        problems.append(_problem(["provider"], "not a provider of this encounter"))
    _fail(problems)
    opened = records_service.open_record(
        session=session, actor=actor, work_item_id=work_item_id, purpose="TREAT"
    )
    quotes = _quotes(opened.record, data, problems)
    _fail(problems)
    assert actor.user_id is not None  # noqa: S101 - leased_item checked
    options = YES_NO_OPTIONS if data.template == "yes_no" else list(data.options)
    query = PhysicianQuery(
        work_item_id=work_item_id,
        coder_id=actor.user_id,
        provider_npi=data.provider,
        template=data.template,
        sealed_content=b"",
    )
    session.add(query)
    session.flush()
    assert query.id is not None  # noqa: S101
    query.sealed_content = opened.key.seal(
        table=TABLE,
        row_id=query.id,
        field="content",
        value={
            "question": data.question,
            "options": options,
            "basis": data.basis,
            "indicators": quotes,
            "patient": {
                "name": opened.record.patient.name,
                "mrn": opened.record.patient.mrn,
            },
        },
    )
    session.add(query)
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.query_create,
        patient_id=opened.record.patient_id,
        work_item_id=work_item_id,
        purpose="TREAT",
        detail=f"query={query.id} provider={data.provider} template={data.template}",
    )
    held = queue_service.hold(
        session, actor=actor, work_item_id=work_item_id, reason=QUERY_HOLD_REASON, listed=False
    )
    return query, held


# ---------------------------------------------------------------- reading


def _usernames(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.exec(select(User.id, User.username).where(col(User.id).in_(ids))).all()
    return {i: n for i, n in rows if i is not None}


def _provider_names(session: Session, queries: list[PhysicianQuery]) -> dict[int, str]:
    """{query id: the provider's name as the query's encounter lists it}."""
    if not queries:
        return {}
    item_ids = {q.work_item_id for q in queries}
    rows = session.exec(
        select(WorkItem.id, EncounterProvider.npi, EncounterProvider.name)
        .join(EncounterProvider, col(EncounterProvider.encounter_id) == col(WorkItem.encounter_id))
        .where(col(WorkItem.id).in_(item_ids))
    ).all()
    names = {(i, npi): name for i, npi, name in rows}
    return {q.id or 0: names.get((q.work_item_id, q.provider_npi), "") for q in queries}


def _answerers(session: Session, queries: list[PhysicianQuery]) -> dict[int, str]:
    """{user id: username} of whoever answered these queries."""
    return _usernames(
        session,
        {q.answered_by_id for q in queries if q.answered_by_id and q.sealed_answer is not None},
    )


def _view(
    session: Session,
    query: PhysicianQuery,
    key: ItemKey,
    *,
    names: dict[int, str] | None = None,
    by: dict[int, str] | None = None,
) -> QueryView:
    """A query's sealed fields opened with the key an audited door handed out.

    `names` (_provider_names) and `by` (_answerers), when a caller read them for many
    queries at once; else they are read for this one.
    """
    assert query.id is not None  # noqa: S101
    content = key.open(table=TABLE, row_id=query.id, field="content", sealed=query.sealed_content)
    answer = None
    if query.sealed_answer is not None:
        raw = key.open(table=TABLE, row_id=query.id, field="answer", sealed=query.sealed_answer)
        by = _answerers(session, [query]) if by is None else by
        answer = AnswerView(
            option=raw.get("option"),
            text=raw.get("text"),
            answered_at=query.answered_at,
            answered_by=by.get(query.answered_by_id or 0),
        )
    return QueryView(
        id=query.id,
        work_item=query.work_item_id,
        status=query.status,
        template=query.template,
        question=content["question"],
        options=content["options"],
        basis=content.get("basis"),
        indicators=[IndicatorView.model_validate(i) for i in content["indicators"]],
        provider=ProviderView(
            npi=query.provider_npi,
            name=(_provider_names(session, [query]) if names is None else names).get(query.id, ""),
        ),
        patient=content.get("patient") or {},
        created_at=query.created_at,
        escalated_at=query.escalated_at,
        answer=answer,
    )


def item_queries(session: Session, *, key: ItemKey) -> list[QueryView]:
    """Every query of the item whose key the chart's audited view handed out, oldest first."""
    rows = list(session.exec(_ITEM_QUERIES, params={"item_id": key.work_item_id}).all())
    # The providers' names and the answerers' usernames once for all the item's queries
    # (they were two statements per query: issue 23).
    names, by = _provider_names(session, rows), _answerers(session, rows)
    return [_view(session, q, key, names=names, by=by) for q in rows]


def _may_read(session: Session, actor: Principal, query: PhysicianQuery) -> bool:
    """Who may read a query (it quotes the chart and names the patient), no wider than the
    chart itself: providers, queries to their NPI; coders, queries they asked while the
    chart is in their list (leased, on hold or returned to them); supervisors, open queries
    (to steer and escalate them) and those of a chart in QA review."""
    if actor.has_role(Role.provider):
        return query.provider_npi == auth_service.provider_npi(session, user_id=actor.user_id)
    item = session.get(WorkItem, query.work_item_id)
    if actor.has_role(Role.supervisor) and (
        query.status == "open" or (item is not None and item.status == Status.qa_review)
    ):
        return True
    return (
        actor.has_role(Role.coder)
        and actor.user_id is not None
        and query.coder_id == actor.user_id
        and item is not None
        and queue_service.in_my_list(item, actor.user_id)
    )


_LOCK_QUERY = (
    select(PhysicianQuery)
    .where(col(PhysicianQuery.id) == bindparam("query_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def _readable(
    session: Session, *, actor: Principal, query_id: int, action: audit_service.Action
) -> PhysicianQuery:
    """The query if the caller may read it (row locked), else NotFound audited as denied."""
    query: PhysicianQuery | None = session.execute(_LOCK_QUERY, {"query_id": query_id}).scalar()
    if query is None or not _may_read(session, actor, query):
        audit_service.record_denied(
            session,
            actor=actor,
            action=action,
            work_item_id=query.work_item_id if query else None,
            purpose=PURPOSE,
            detail=f"query={query_id} not the caller's",
        )
        raise NotFound("No such query.")
    return query


def get_query(session: Session, *, actor: Principal, query_id: int) -> QueryView:
    """One query for its provider, its coder or a supervisor: audited as `query-view`.

    The key opens the query's own fields only; the chart itself stays closed to providers.
    """
    query = _readable(
        session, actor=actor, query_id=query_id, action=audit_service.Action.query_view
    )
    key = records_service.open_for_use(
        session,
        actor=actor,
        work_item_id=query.work_item_id,
        action=audit_service.Action.query_view,
        purpose=PURPOSE,
        detail=f"query={query.id}",
    )
    return _view(session, query, key)


def _answer_problems(content: dict[str, Any], template: str, data: AnswerIn) -> list[Any]:
    options = [o.casefold() for o in content["options"]]
    option = data.option.casefold() if data.option else None
    problems: list[dict[str, Any]] = []
    if template == "open_ended":
        if option is not None:
            problems.append(_problem(["option"], "an open-ended query is answered in text"))
        if not data.text:
            problems.append(_problem(["text"], "write the answer"))
        return problems
    if option is None:
        problems.append(_problem(["option"], "pick one of the options"))
    elif option not in options:
        problems.append(_problem(["option"], "not one of the query's options"))
    elif option == "other" and not data.text:
        problems.append(_problem(["text"], 'say what "other" is'))
    return problems


def answer(session: Session, *, actor: Principal, query_id: int, data: AnswerIn) -> QueryView:
    """The provider answers their own open query, signing with a current TOTP code.

    Stored sealed; audited as `query-answer`. When the item has no open query left and is
    still held for one, it goes back to its coder's list (status `returned`, theirs).
    """
    query = _readable(
        session, actor=actor, query_id=query_id, action=audit_service.Action.query_answer
    )
    if not actor.has_role(Role.provider):
        raise NotFound("No such query.")
    if query.status != "open":
        raise Conflict("This query is already answered.")
    auth_service.confirm_totp(session, principal=actor, code=data.totp)
    key = records_service.open_for_use(
        session,
        actor=actor,
        work_item_id=query.work_item_id,
        action=audit_service.Action.query_answer,
        purpose=PURPOSE,
        detail=f"query={query.id}",
    )
    _seal_answer(session, actor=actor, query=query, key=key, data=data)
    _back_to_coder(session, actor=actor, query=query)
    return _view(session, query, key)


def _seal_answer(
    session: Session, *, actor: Principal, query: PhysicianQuery, key: ItemKey, data: AnswerIn
) -> None:
    """Check the answer against the query's options, then store it sealed (answered)."""
    assert query.id is not None  # noqa: S101
    content = key.open(table=TABLE, row_id=query.id, field="content", sealed=query.sealed_content)
    _fail(_answer_problems(content, query.template, data))
    wanted = data.option.casefold() if data.option else None
    option = next((o for o in content["options"] if o.casefold() == wanted), None)
    query.sealed_answer = key.seal(
        table=TABLE, row_id=query.id, field="answer", value={"option": option, "text": data.text}
    )
    query.status = "answered"
    query.answered_at = utcnow()
    query.answered_by_id = actor.user_id
    session.add(query)
    session.flush()


def _back_to_coder(session: Session, *, actor: Principal, query: PhysicianQuery) -> None:
    """The held item returns to its coder once none of its queries is open."""
    still_open = session.exec(
        select(PhysicianQuery.id).where(
            PhysicianQuery.work_item_id == query.work_item_id, PhysicianQuery.status == "open"
        )
    ).first()
    item = queue_service.lock_item(session, query.work_item_id)
    if (
        still_open is not None
        or item is None
        or item.status != Status.on_hold
        or item.hold_reason != QUERY_HOLD_REASON
    ):
        return
    queue_service.transition(
        session,
        item=item,
        to_status=Status.returned,
        actor=actor,
        action="query-answered",
        reason=QUERY_HOLD_REASON,
        owner_id=item.lease_owner_id or query.coder_id,
    )


# ---------------------------------------------------------------- lists, escalation


def list_queries(
    session: Session,
    *,
    actor: Principal,
    status: str | None = None,
    provider: str | None = None,
    cursor: int | None = None,
    limit: int = 50,
) -> tuple[list[QuerySummary], int | None]:
    """Queries newest first, ids and times only: a provider's own, a coder's own, or (for
    supervisors) all, filtered by status and provider NPI; keyset pages by id."""
    if status is not None and status not in STATUSES:
        raise ValidationFailed(
            "Unknown status.", details=[{"loc": ["status"], "msg": f"one of {', '.join(STATUSES)}"}]
        )
    stmt = select(PhysicianQuery)
    if actor.has_role(Role.provider):
        own = auth_service.provider_npi(session, user_id=actor.user_id)
        if own is None or (provider is not None and provider != own):
            return [], None
        stmt = stmt.where(PhysicianQuery.provider_npi == own)
    elif not actor.has_role(Role.supervisor):
        stmt = stmt.where(PhysicianQuery.coder_id == actor.user_id)
    if provider is not None:
        stmt = stmt.where(PhysicianQuery.provider_npi == provider)
    if status == "escalated":
        stmt = stmt.where(
            PhysicianQuery.status == "open", col(PhysicianQuery.escalated_at).is_not(None)
        )
    elif status is not None:
        stmt = stmt.where(PhysicianQuery.status == status)
    if cursor is not None:
        stmt = stmt.where(col(PhysicianQuery.id) < cursor)
    rows = list(session.exec(stmt.order_by(col(PhysicianQuery.id).desc()).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    names = _provider_names(session, rows)
    coders = _usernames(session, {q.coder_id for q in rows})
    now = utcnow()
    items = [
        QuerySummary(
            id=q.id or 0,
            work_item=q.work_item_id,
            status=q.status,
            template=q.template,
            provider=q.provider_npi,
            provider_name=names.get(q.id or 0, ""),
            coder=coders.get(q.coder_id),
            created_at=q.created_at,
            answered_at=q.answered_at,
            escalated_at=q.escalated_at,
            age_days=round(((q.answered_at or now) - q.created_at).total_seconds() / 86400, 2),
        )
        for q in rows
    ]
    return items, (rows[-1].id if more and rows else None)


def add_business_days(start: datetime, days: int) -> datetime:
    """`start` plus `days` working days (Monday to Friday), same time of day."""
    current = start
    left = days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


def escalate_overdue(session: Session, *, now: datetime | None = None) -> list[int]:
    """Mark open queries older than CHARTDESK_QUERY_ESCALATION_BUSINESS_DAYS as escalated
    (supervisors see them with `status=escalated`); audited by id. Returns their ids."""
    now = now or utcnow()
    days = get_settings().query_escalation_business_days
    candidates = session.exec(
        select(PhysicianQuery).where(
            PhysicianQuery.status == "open", col(PhysicianQuery.escalated_at).is_(None)
        )
    ).all()
    escalated = []
    sweeper = system_principal("query-escalation")
    for query in candidates:
        if add_business_days(query.created_at, days) <= now:
            query.escalated_at = now
            session.add(query)
            audit_service.record(
                session,
                actor=sweeper,
                action=audit_service.Action.query_escalate,
                work_item_id=query.work_item_id,
                purpose=PURPOSE,
                detail=f"query={query.id} provider={query.provider_npi}",
            )
            escalated.append(query.id or 0)
    session.flush()
    return escalated
