"""Remittances in (X12 835) and the denials loop back to the coder.

`post` validates the 835 (x835.parse: envelope, implementation guide, pyx12), then stores
each CLP against the claim whose CLM01 it echoes (`CD<work item id>`, billed), per claim and
per line with CARC groups/reasons and RARC remarks; a CLP matching no billed claim is kept
as `unmatched`. The trace number (TRN02) makes it idempotent. A denied or partly denied
claim goes back to the coder who coded it as a returned item whose reason lists the coded
reasons and the lines in question; the corrected claim then goes out as a replacement
(CLM05-3 = 7, REF*F8 = the payer's claim number; see `replacement_of`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.billing import x835
from server.config import Settings, get_settings
from server.errors import ValidationFailed
from server.models import (
    ClaimRecord,
    ClaimReturn,
    Queue,
    RemitAdjustment,
    RemitClaim,
    RemitLine,
    RemitRemark,
    Remittance,
    Status,
    WorkItem,
    WorkItemEvent,
)
from server.queue import service as queue_service
from server.records import service as records_service

PURPOSE = "HPAYMT"
CLAIM_ID = re.compile(r"^CD(\d{1,12})$")
MAX_BYTES = 5_000_000


@dataclass
class AdjustmentView:
    """A CAS adjustment as answered and shown (no patient data)."""

    group: str
    reason: str
    amount: float
    line: int | None = None
    description: str | None = None
    known: bool = True


@dataclass
class LineView:
    """A service line as the payer adjudicated it."""

    line: int
    code: str
    charge: float
    paid: float
    adjustments: list[AdjustmentView] = field(default_factory=list)
    remarks: list[tuple[str, str | None]] = field(default_factory=list)  # (RARC, description)


@dataclass
class ClaimView:
    """One CLP as stored: the API's item and the biller's and coder's view."""

    id: int
    claim_number: str
    status: str
    paid: float
    charge: float
    denied: float
    payer: str
    payer_claim_number: str | None
    work_item: int | None
    adjustments: list[AdjustmentView]
    remarks: list[tuple[str, str | None]]
    lines: list[LineView]
    returned: bool
    reversed_by: int | None = None  # a later reversal (CLP02 = 22) undid this posting
    returned_to_queue: str | None = None  # sent to this denials queue (rule, or no coder)

    def as_json(self) -> dict[str, Any]:
        """The contract's item plus what a biller needs to follow up."""
        return {
            "claim_number": self.claim_number,
            "status": self.status,
            "paid": self.paid,
            "adjustments": [
                {
                    "group": a.group,
                    "reason": a.reason,
                    "amount": a.amount,
                    "line": a.line,
                    "known": a.known,
                }
                for a in self.adjustments
            ],
            "remarks": [{"code": c, "known": d is not None} for c, d in self.remarks],
            "payer_claim_number": self.payer_claim_number,
            "work_item": self.work_item,
            "returned_to_coder": self.returned and self.returned_to_queue is None,
            "returned_to_queue": self.returned_to_queue,
            "reversed": self.reversed_by is not None,
        }


@dataclass
class PostResult:
    """What one 835 did: its claims, and whether it had been posted before."""

    trace_number: str
    duplicate: bool
    claims: list[ClaimView]

    @property
    def message(self) -> str:
        """One line for the biller."""
        if self.duplicate:
            return f"Trace number {self.trace_number} was already posted; nothing changed."
        counts: dict[str, int] = {}
        for c in self.claims:
            counts[c.status] = counts.get(c.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return f"Posted trace number {self.trace_number}: {summary or 'no claims'}."


def _money(cents: int) -> float:
    return round(cents / 100, 2)


def _invalid(session: Session, actor: Principal, exc: x835.X12Invalid) -> ValidationFailed:
    audit_service.record_denied(
        session,
        actor=actor,
        action=audit_service.Action.remittance,
        outcome=audit_service.Outcome.failed,
        purpose=PURPOSE,
        detail=f"malformed 835 at segment {exc.segment}",
    )
    return ValidationFailed(
        f"Malformed 835 at segment {exc.segment}: {exc.message}",
        code="x12_invalid",
        details=[
            {"loc": ["body", "segment", exc.segment], "segment": exc.segment, "msg": exc.message}
        ],
    )


def post(session: Session, *, actor: Principal, text: str) -> list[PostResult]:
    """Post an 835 interchange: every transaction stored, or nothing if any part is bad."""
    if len(text) > MAX_BYTES:
        raise ValidationFailed(
            "The 835 is too large.", details=[{"loc": ["body"], "msg": "over 5 MB"}]
        )
    try:
        remits = x835.parse(text)
    except x835.X12Invalid as exc:
        raise _invalid(session, actor, exc) from None
    digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
    return [_post_one(session, actor=actor, remit=r, digest=digest) for r in remits]


def _post_one(session: Session, *, actor: Principal, remit: x835.Remit, digest: str) -> PostResult:
    trace = remit.trace_number[:50]
    before = session.exec(select(Remittance).where(Remittance.trace_number == trace)).first()
    if before is not None:
        audit_service.record(
            session,
            actor=actor,
            action=audit_service.Action.remittance,
            purpose=PURPOSE,
            detail=f"duplicate trace remittance={before.id}; nothing changed",
        )
        return PostResult(trace, True, claims_of(session, remittance_id=before.id))
    row = Remittance(
        trace_number=trace,
        payer_name=remit.payer_name or "UNKNOWN PAYER",
        payer_id=(remit.payer_id or None) and str(remit.payer_id)[:80],
        paid_cents=remit.paid_cents,
        claims=len(remit.claims),
        sha256=digest,
        received_by=actor.name,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # the same trace posted at the same moment by another request
        session.expire_all()
        again = session.exec(select(Remittance).where(Remittance.trace_number == trace)).one()
        return PostResult(trace, True, claims_of(session, remittance_id=again.id))
    assert row.id is not None  # noqa: S101
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.remittance,
        purpose=PURPOSE,
        detail=f"remittance={row.id} claims={len(remit.claims)}",
    )
    for clp in remit.claims:
        _store_claim(session, actor=actor, remittance=row, clp=clp)
    return PostResult(trace, False, claims_of(session, remittance_id=row.id))


def _match(session: Session, claim_number: str) -> WorkItem | None:
    """The billed item whose CLM01 the CLP01 echoes, if any."""
    m = CLAIM_ID.match(claim_number)
    if not m:
        return None
    item = session.get(WorkItem, int(m.group(1)))
    if item is None:
        return None
    billed = session.exec(
        select(ClaimRecord.id).where(ClaimRecord.work_item_id == item.id).limit(1)
    ).first()
    return item if billed is not None else None


def _shown_number(claim_number: str) -> str:
    """CLP01 as stored: ours (`CD<id>`) in clear; another system's patient control number
    may be a patient account number, so only its last four characters are kept."""
    if CLAIM_ID.match(claim_number):
        return claim_number
    return "*" * max(len(claim_number) - 4, 0) + claim_number[-4:]


def _store_claim(
    session: Session, *, actor: Principal, remittance: Remittance, clp: x835.ClaimPayment
) -> None:
    assert remittance.id is not None  # noqa: S101
    item = _match(session, clp.claim_number)
    status = clp.status if item is not None else "unmatched"
    reversal = clp.status_code == x835.REVERSAL
    row = RemitClaim(
        remittance_id=remittance.id,
        claim_number=_shown_number(clp.claim_number),
        work_item_id=item.id if item else None,
        status=status,
        status_code=clp.status_code,
        charge_cents=clp.charge_cents,
        paid_cents=clp.paid_cents,
        patient_cents=clp.patient_cents,
        denied_cents=0 if reversal else clp.denied_cents,  # a reversal denies nothing
        payer_claim_number=clp.payer_claim_number,
        payer_name=remittance.payer_name,
        queue_id=item.queue_id if item else None,
        coder_id=item.coded_by_id if item else None,
        received_at=remittance.received_at,
    )
    session.add(row)
    session.flush()
    assert row.id is not None  # noqa: S101
    carc, rarc = x835.carc(), x835.rarc()
    for line_no, adj in clp.all_adjustments:
        session.add(
            RemitAdjustment(
                remit_claim_id=row.id,
                line_no=line_no,
                group=adj.group[:2],
                reason=adj.reason[:5],
                amount_cents=adj.cents,
                known=carc.describe(adj.reason) is not None,
            )
        )
    remarks = [(None, c) for c in clp.remarks] + [
        (line.line_no, c) for line in clp.lines for c in line.remarks
    ]
    for line_no, code in remarks:
        session.add(
            RemitRemark(
                remit_claim_id=row.id,
                line_no=line_no,
                code=code,
                known=rarc.describe(code) is not None,
            )
        )
    for line in clp.lines:
        session.add(
            RemitLine(
                remit_claim_id=row.id,
                line_no=line.line_no,
                code=line.code,
                charge_cents=line.charge_cents,
                paid_cents=line.paid_cents,
                units=line.units,
            )
        )
    session.flush()
    unknown = sum(1 for _, a in clp.all_adjustments if carc.describe(a.reason) is None)
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.remittance,
        work_item_id=row.work_item_id,
        purpose=PURPOSE,
        detail=f"remit_claim={row.id} status={status}"
        + (f" unknown_carc={unknown}" if unknown else ""),
    )
    if reversal:
        _reverse(session, actor=actor, reversal=row)
    elif item is not None and status in ("denied", "partial"):
        _return_denial(session, actor=actor, item=item, claim=row)


def _reverse(session: Session, *, actor: Principal, reversal: RemitClaim) -> None:
    """Undo the earlier posting a reversal (CLP02 = 22) names: the latest answer on the same
    claim (and the same payer claim number when the payer sends one) not reversed yet. The
    earlier row stays as history, marked reversed; reports no longer count it."""
    assert reversal.id is not None  # noqa: S101
    stmt = select(RemitClaim).where(
        RemitClaim.claim_number == reversal.claim_number,
        col(RemitClaim.id) < reversal.id,
        col(RemitClaim.reversed_by_id).is_(None),
        RemitClaim.status_code != x835.REVERSAL,
    )
    if reversal.payer_claim_number:
        stmt = stmt.where(RemitClaim.payer_claim_number == reversal.payer_claim_number)
    earlier = session.exec(stmt.order_by(col(RemitClaim.id).desc()).limit(1)).first()
    if earlier is None:  # nothing posted to undo: kept and listed for the biller
        detail = f"reversal remit_claim={reversal.id} found no earlier posting"
    else:
        earlier.reversed_by_id = reversal.id
        session.add(earlier)
        session.flush()
        detail = f"reversal remit_claim={reversal.id} reverses remit_claim={earlier.id}"
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.remittance,
        work_item_id=reversal.work_item_id,
        purpose=PURPOSE,
        detail=detail,
    )


def denial_queue(view: ClaimView | None, settings: Settings | None = None) -> str | None:
    """The queue a denial goes to by the first matching rule (CHARTDESK_BILLING_DENIAL_RULES:
    CARC group/reason among the denial adjustments, payer name), else None (the coder).
    `view` None is a biller's own return (no payer answer): only a rule naming neither a
    CARC nor a payer matches it."""
    rules = (settings or get_settings()).billing_denial_rules
    denials = [a for a in view.adjustments if _is_denial(a.group, a.reason)] if view else []
    payer = view.payer.strip().casefold() if view else ""
    for rule in rules:
        if rule.payer and rule.payer.strip().casefold() != payer:
            continue
        if (rule.group or rule.reason) and not any(
            (not rule.group or a.group == rule.group.upper())
            and (not rule.reason or a.reason == rule.reason.upper())
            for a in denials
        ):
            continue
        return rule.queue
    return None


def return_queue(
    session: Session, *, item: WorkItem, view: ClaimView | None, settings: Settings | None = None
) -> Queue | None:
    """Where an item sent back from billing goes, for a payer's denial (`view`) and a biller's
    return (`view` None) alike: a denial by the first matching rule, else to the coder who
    coded it (None); a biller's return to its coder; with no coder on record, by a rule that
    matches, else to the denials queue (CHARTDESK_BILLING_DENIALS_QUEUE)."""
    settings = settings or get_settings()
    name = denial_queue(view, settings) if view is not None else None
    if name is None and item.coded_by_id is None:
        name = denial_queue(None, settings) or settings.billing_denials_queue
    return _queue_named(session, name) if name else None


def send_back(
    session: Session,
    *,
    actor: Principal,
    item: WorkItem,
    reason: str,
    view: ClaimView | None = None,
) -> tuple[ClaimReturn, Queue | None]:
    """Send a locked item back from billing with the reason sealed (`return_queue` says
    where): into a queue as ready for its coders, or returned to the coder who coded it."""
    assert item.id is not None  # noqa: S101
    target = return_queue(session, item=item, view=view)
    back = ClaimReturn(
        work_item_id=item.id,
        coder_id=None if target else item.coded_by_id,
        queue_id=target.id if target else None,
        sealed_reason=b"",
        returned_by=actor.name,
    )
    session.add(back)
    session.flush()
    assert back.id is not None  # noqa: S101
    back.sealed_reason = records_service.seal_for_item(
        session,
        work_item_id=item.id,
        table=ClaimReturn.__tablename__,
        row_id=back.id,
        field="reason",
        value=reason,
    )
    why = "payer denial" if view is not None else None
    if target is not None:  # the queue's coders take it as their next item
        assert target.id is not None  # noqa: S101
        item.queue_id = target.id
        queue_service.transition(
            session,
            item=item,
            to_status=Status.ready,
            actor=actor,
            action="returned",
            reason=f"{why or 'billing return'} to queue {target.name}",
        )
    else:
        queue_service.transition(
            session,
            item=item,
            to_status=Status.returned,
            actor=actor,
            action="returned",
            reason=why,
            owner_id=item.coded_by_id,
        )
    return back, target


def _is_denial(group: str, reason: str) -> bool:
    return group not in ("PR", "CR") and reason not in x835.NOT_DENIAL


def _queue_named(session: Session, name: str) -> Queue:
    found = session.exec(select(Queue).where(Queue.name == name)).first()
    return found or queue_service.create_queue(session, name=name)


def _return_denial(
    session: Session, *, actor: Principal, item: WorkItem, claim: RemitClaim
) -> None:
    """Send a denied claim back with the payer's reasons as the note: to a denials queue by
    rule, else to the coder who coded it; with no coder on record, to the denials queue."""
    assert item.id is not None  # noqa: S101
    assert claim.id is not None  # noqa: S101
    locked = queue_service.lock_item(session, item.id)
    if locked is None or locked.status != Status.billed:
        # Already back with the coder, or rebilled: the answer is stored and listed for the
        # biller, who may return it by hand.
        return
    view = claims_of(session, remit_claim_id=claim.id)[0]
    back, target = send_back(session, actor=actor, item=locked, reason=denial_text(view), view=view)
    claim.claim_return_id = back.id
    session.add(claim)
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.returned,
        work_item_id=item.id,
        purpose=PURPOSE,
        detail=f"denial remit_claim={claim.id}"
        + (f" queue={target.id}" if target is not None else " to coder"),
    )


def _reason(a: AdjustmentView) -> str:
    what = a.description or "not in the shipped CARC list"
    return f"{a.group}-{a.reason} {what} ({a.amount:.2f})"


def denial_text(view: ClaimView) -> str:
    """The coder's note: the payer's coded reasons and the lines in question."""
    head = (
        f"Payer {view.payer} {'denied' if view.status == 'denied' else 'partly denied'} "
        f"claim {view.claim_number} (payer claim {view.payer_claim_number or '-'}; "
        f"paid {view.paid:.2f} of {view.charge:.2f})."
    )
    parts = [head]
    claim_level = [a for a in view.adjustments if a.line is None]
    if claim_level:
        parts.append("Claim: " + "; ".join(_reason(a) for a in claim_level))
    for c, d in view.remarks:
        parts.append(f"Remark {c}: {d or 'not in the shipped RARC list'}")
    for line in view.lines:
        if not line.adjustments and not line.remarks:
            continue
        reasons = "; ".join(_reason(a) for a in line.adjustments)
        remarks = "; ".join(f"{c} {d or 'unknown remark'}" for c, d in line.remarks)
        parts.append(
            f"Line {line.line} {line.code} (charged {line.charge:.2f}, paid {line.paid:.2f}): "
            + "; ".join(x for x in (reasons, remarks) if x)
        )
    return "\n".join(parts)


def claims_of(
    session: Session,
    *,
    remittance_id: int | None = None,
    remit_claim_id: int | None = None,
    work_item_id: int | None = None,
    status: str | None = None,
    after: int | None = None,
    before: int | None = None,
    limit: int = 200,
) -> list[ClaimView]:
    """Stored remittance claims with their lines, adjustments and remarks, oldest first:
    the latest `limit` (before the id `before`, for a page of older ones), or with `after`
    (keyset pagination) the next `limit` after that id."""
    stmt = select(RemitClaim)
    if after is not None:
        stmt = stmt.where(col(RemitClaim.id) > after)
    if before is not None:
        stmt = stmt.where(col(RemitClaim.id) < before)
    if remittance_id is not None:
        stmt = stmt.where(RemitClaim.remittance_id == remittance_id)
    if remit_claim_id is not None:
        stmt = stmt.where(RemitClaim.id == remit_claim_id)
    if work_item_id is not None:
        stmt = stmt.where(RemitClaim.work_item_id == work_item_id)
    if status is not None:
        stmt = stmt.where(RemitClaim.status == status)
    if after is not None:
        rows = list(session.exec(stmt.order_by(col(RemitClaim.id)).limit(limit)).all())
    else:
        rows = list(session.exec(stmt.order_by(col(RemitClaim.id).desc()).limit(limit)).all())
        rows.reverse()
    ids = [r.id for r in rows]
    if not ids:
        return []
    adjs = session.exec(
        select(RemitAdjustment)
        .where(col(RemitAdjustment.remit_claim_id).in_(ids))
        .order_by(col(RemitAdjustment.id))
    ).all()
    rems = session.exec(
        select(RemitRemark)
        .where(col(RemitRemark.remit_claim_id).in_(ids))
        .order_by(col(RemitRemark.id))
    ).all()
    lines = session.exec(
        select(RemitLine).where(col(RemitLine.remit_claim_id).in_(ids)).order_by(col(RemitLine.id))
    ).all()
    returns = [r.claim_return_id for r in rows if r.claim_return_id is not None]
    to_queue = (
        dict(
            session.exec(
                select(ClaimReturn.id, Queue.name)
                .join(Queue, col(Queue.id) == col(ClaimReturn.queue_id))
                .where(col(ClaimReturn.id).in_(returns))
            ).all()
        )
        if returns
        else {}
    )
    carc, rarc = x835.carc(), x835.rarc()
    out = []
    for r in rows:
        a_views = [
            AdjustmentView(
                group=a.group,
                reason=a.reason,
                amount=_money(a.amount_cents),
                line=a.line_no,
                description=carc.describe(a.reason),
                known=a.known,
            )
            for a in adjs
            if a.remit_claim_id == r.id
        ]
        l_views = [
            LineView(
                line=ln.line_no,
                code=ln.code,
                charge=_money(ln.charge_cents),
                paid=_money(ln.paid_cents),
                adjustments=[a for a in a_views if a.line == ln.line_no],
                remarks=[
                    (m.code, rarc.describe(m.code))
                    for m in rems
                    if m.remit_claim_id == r.id and m.line_no == ln.line_no
                ],
            )
            for ln in lines
            if ln.remit_claim_id == r.id
        ]
        assert r.id is not None  # noqa: S101
        out.append(
            ClaimView(
                id=r.id,
                claim_number=r.claim_number,
                status=r.status,
                paid=_money(r.paid_cents),
                charge=_money(r.charge_cents),
                denied=_money(r.denied_cents),
                payer=r.payer_name,
                payer_claim_number=r.payer_claim_number,
                work_item=r.work_item_id,
                adjustments=a_views,
                remarks=[
                    (m.code, rarc.describe(m.code))
                    for m in rems
                    if m.remit_claim_id == r.id and m.line_no is None
                ],
                lines=l_views,
                returned=r.claim_return_id is not None,
                reversed_by=r.reversed_by_id,
                returned_to_queue=to_queue.get(r.claim_return_id),
            )
        )
    return out


def replacement_of(session: Session, *, work_item_id: int) -> str | None:
    """The payer's claim number a corrected claim replaces (then CLM05-3 is 7 and REF*F8
    carries it): CLP07 if the last answer on this item was a denial sent back to the coder;
    else, if a QA review corrected the codes after the item was billed (a retrospective
    review), the payer's CLP07 for it if an 835 came, else the claim number recorded when
    it was billed. None: the next claim is an original."""
    row = session.exec(
        select(RemitClaim)
        .where(
            RemitClaim.work_item_id == work_item_id, col(RemitClaim.claim_return_id).is_not(None)
        )
        .order_by(col(RemitClaim.id).desc())
        .limit(1)
    ).first()
    if row is not None:
        return row.payer_claim_number
    if not _corrected_after_billing(session, work_item_id=work_item_id):
        return None
    billed = session.exec(
        select(ClaimRecord)
        .where(ClaimRecord.work_item_id == work_item_id)
        .order_by(col(ClaimRecord.id).desc())
        .limit(1)
    ).first()
    if billed is None:
        return None
    # The payer's answer to the claim last billed (not to an earlier one it replaced).
    answered = session.exec(
        select(RemitClaim.payer_claim_number)
        .where(
            RemitClaim.work_item_id == work_item_id,
            col(RemitClaim.payer_claim_number).is_not(None),
            col(RemitClaim.reversed_by_id).is_(None),
            col(RemitClaim.received_at) >= billed.billed_at,
        )
        .order_by(col(RemitClaim.id).desc())
        .limit(1)
    ).first()
    return answered or billed.claim_number


def _corrected_after_billing(session: Session, *, work_item_id: int) -> bool:
    """Whether the item's codes were corrected by QA since it was last billed (a correction,
    or a coder's code restored on an overturned finding)."""
    events = session.exec(
        select(WorkItemEvent.action, WorkItemEvent.to_status)
        .where(WorkItemEvent.work_item_id == work_item_id)
        .order_by(col(WorkItemEvent.id).desc())
        .limit(200)
    ).all()
    for action, to_status in events:
        if to_status == Status.billed:
            return False  # billed again since (or never corrected after billing)
        if action in ("qa-corrected", "qa-overturned"):
            return any(to == Status.billed for _, to in events)
    return False


def denial_of(session: Session, *, claim_return_id: int) -> ClaimView | None:
    """The payer's denial behind a return to the coder, if it was one (codes, no PHI)."""
    row = session.exec(
        select(RemitClaim.id).where(RemitClaim.claim_return_id == claim_return_id).limit(1)
    ).first()
    return claims_of(session, remit_claim_id=row)[0] if row is not None else None
