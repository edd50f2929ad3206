"""The QA worksheet and what follows it: the reviewer's decision (accept, or correct with a
category per derived difference), the coder's acknowledgement or rebuttal, and the
supervisor's final decision on a rebuttal.

The corrected codes become the item's codes (the ones billed). Each difference becomes a
`QaFinding`: its kind, line and category in clear (what scores count), the codes before and
after and the reviewer's comment sealed under the encounter's data key, like the coder's
and supervisor's reasons. Opening them is an audited use (`qa-finding-view`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.coding import abstract as abstract_service
from server.coding import service as coding_service
from server.coding.abstract import Abstract
from server.coding.schemas import Codes
from server.config import get_settings
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.models import QaFinding, QaReview, Role, Status, User, WorkItem, WorkItemEvent
from server.models.base import utcnow
from server.models.qa import FINDING_STATUSES
from server.qa import diff
from server.qa.schemas import FindingIn
from server.qa.taxonomy import taxonomy
from server.queue import service as queue_service
from server.records import service as records_service
from server.records.schemas import safe_errors
from server.records.service import ItemKey

PURPOSE = "HOPERAT"


# ---------------------------------------------------------------- the worksheet


def check_findings(
    differences: list[diff.Difference], findings: list[FindingIn]
) -> list[dict[str, Any]]:
    """Error details for differences without a (known) category, in the order given."""
    known = taxonomy().ids()
    errors: list[dict[str, Any]] = []
    if len(findings) > len(differences):
        errors.append(
            {
                "loc": ["findings"],
                "msg": f"{len(findings)} findings for {len(differences)} differences: "
                "give one per difference, in order.",
            }
        )
    for n, d in enumerate(differences):
        category = findings[n].category if n < len(findings) else None
        if not category:
            errors.append(
                {
                    "loc": ["findings", n, "category"],
                    "msg": f"Difference {n + 1}, {d.summary}: choose an error category.",
                }
            )
        elif category not in known:
            errors.append(
                {
                    "loc": ["findings", n, "category"],
                    "msg": f"Difference {n + 1}: '{category[:40]}' is not a category of the "
                    f"error taxonomy ({taxonomy().version}).",
                }
            )
    return errors


def merged_abstract(abstract: Abstract, fields: dict[str, str | None]) -> Abstract:
    """`abstract` with some fields replaced (422 naming a field whose code is not listed)."""
    try:
        return Abstract.model_validate({**abstract.model_dump(), **fields})
    except PydanticValidationError as exc:
        raise ValidationFailed("The abstract is not valid.", details=safe_errors(exc)) from None


def _weight_and_drg(
    session: Session, *, item: WorkItem, key: ItemKey, codes: Codes, abstract: Abstract
) -> tuple[str | None, float | None, str | None]:
    """The MS-DRG, its relative weight and grouper version (Nones: outpatient, no group)."""
    context = coding_service.claim_context(session, item=item, key=key, abstract=abstract)
    found = coding_service.working_drg(codes, context)
    if found is None or not found.drg:
        return None, None, None
    return found.drg, found.weight, found.version


def _corrected(
    session: Session,
    *,
    item: WorkItem,
    key: ItemKey,
    before: tuple[Codes, Abstract],
    codes: Codes,
    abstract: Abstract | None,
    abstract_fields: dict[str, str | None] | None,
    findings: list[FindingIn] | None,
    keyed: dict[str, FindingIn] | None,
) -> tuple[Codes, Abstract, list[diff.Difference]]:
    """Check a correction (differences, a category each, the claim checks) and store the
    corrected codes and abstract as the item's; ValidationFailed with every problem."""
    codes_before, abstract_before = before
    context = coding_service.claim_context(session, item=item, key=key, abstract=abstract_before)
    # A line picked by chargemaster charge code gets its code, as on the workbench.
    codes = coding_service.with_charge_codes(session, codes=codes, on=context.date_of_service)
    abstract_after = abstract if abstract is not None else abstract_before
    if abstract_fields is not None:
        abstract_after = merged_abstract(abstract_after, abstract_fields)
    differences = diff.differences(
        codes_before, codes, abstract_before=abstract_before, abstract_after=abstract_after
    )
    if not differences:
        raise ValidationFailed(
            "The codes are the coder's as submitted: accept them instead.",
            details=[{"loc": ["codes"], "msg": "no difference from the coder's codes"}],
        )
    if keyed is not None:
        findings = [keyed.get(d.key, FindingIn()) for d in differences]
    problems = check_findings(differences, findings or [])
    if problems:
        raise ValidationFailed("Give each difference an error category.", details=problems)
    context = coding_service.claim_context(session, item=item, key=key, abstract=abstract_after)
    result = coding_service.validate(session, codes=codes, context=context)
    if result.errors:
        raise ValidationFailed("The corrected codes have errors.", details=result.details())
    assert item.id is not None  # noqa: S101
    coding_service.store_codes(session, work_item_id=item.id, codes=codes, key=key)
    if abstract_after != abstract_before:
        abstract_service.store_abstract(session, key=key, abstract=abstract_after)
    return codes, abstract_after, differences


RETROSPECTIVE = "qa-retrospective"  # the event of a billed chart sent back to QA review


def send_retrospective(session: Session, *, actor: Principal, work_item_id: int) -> WorkItem:
    """Send a billed chart to a retrospective QA review on the same worksheet: accepted, it
    returns to billed unchanged; corrected, its next claim replaces the one billed
    (`remittance.replacement_of`). 422 for a chart that is not billed."""
    item = queue_service.lock_item(session, work_item_id)
    if item is None:
        raise NotFound("No such work item.")
    if item.status != Status.billed:
        audit_service.record_denied(
            session,
            actor=actor,
            action=audit_service.Action.qa_retrospective,
            outcome=audit_service.Outcome.failed,
            work_item_id=work_item_id,
            purpose=PURPOSE,
            detail=f"status={item.status}",
        )
        rule = "Only a billed chart goes to a retrospective review"
        now = str(item.status.value if isinstance(item.status, Status) else item.status)
        raise ValidationFailed(
            f"{rule}; chart #{work_item_id} is {now.replace('_', ' ')}.",
            details=[{"loc": ["work_item_id"], "msg": rule}],  # the page says it once
        )
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.qa_retrospective,
        work_item_id=work_item_id,
        purpose=PURPOSE,
        detail="billed -> qa_review",
    )
    return queue_service.transition(
        session, item=item, to_status=Status.qa_review, actor=actor, action=RETROSPECTIVE
    )


def is_retrospective(session: Session, *, work_item_id: int) -> bool:
    """Whether the item's QA review is a retrospective one: it came to QA from billed."""
    last = session.exec(
        select(WorkItemEvent.from_status)
        .where(
            WorkItemEvent.work_item_id == work_item_id,
            WorkItemEvent.to_status == Status.qa_review,
        )
        .order_by(col(WorkItemEvent.id).desc())
        .limit(1)
    ).first()
    return last == Status.billed


def decide(
    session: Session,
    *,
    actor: Principal,
    work_item_id: int,
    decision: str,
    reason: str = "",
    codes: Codes | None = None,
    abstract: Abstract | None = None,
    findings: list[FindingIn] | None = None,
    keyed: dict[str, FindingIn] | None = None,
    abstract_fields: dict[str, str | None] | None = None,
) -> WorkItem:
    """Accept the coder's codes, or correct them: every difference needs a category (422 at
    `findings.N.category`); the corrected codes become the item's; on to billing.

    `findings` go with the differences in the order they are derived; a worksheet form
    gives them `keyed` by each difference's `key` instead, and `abstract_fields` (the
    abstract fields it shows) rather than a whole `abstract`."""
    item = queue_service.lock_item(session, work_item_id)
    if item is None:
        raise NotFound("No such work item.")
    if item.status != Status.qa_review:
        raise Conflict(f"The item is {item.status}, not waiting for QA review.")
    if item.coded_by_id is not None and item.coded_by_id == actor.user_id:
        audit_service.record_denied(
            session,
            actor=actor,
            action=audit_service.Action.qa_decision,
            work_item_id=work_item_id,
            purpose=PURPOSE,
            detail="own chart",
        )
        raise Forbidden("You coded this chart: another reviewer must review it.")
    if decision == "correct" and codes is None:
        raise ValidationFailed(
            "Give the corrected codes.", details=[{"loc": ["codes"], "msg": "required"}]
        )
    assert item.coded_by_id is not None  # noqa: S101 - submitted items have a coder
    assert actor.user_id is not None  # noqa: S101 - supervisors are people
    outcome = "accepted" if decision == "accept" else "corrected"
    # The decision is an audited use of the item (its qa-decision row, written first): its
    # key opens the coder's codes and abstract, and the patient's age and sex for the edits.
    key = records_service.open_for_use(
        session,
        actor=actor,
        work_item_id=work_item_id,
        action=audit_service.Action.qa_decision,
        purpose=PURPOSE,
        detail=outcome,
    )
    before = coding_service.get_codes(session, key=key)
    abstract_before = abstract_service.get_abstract(session, key=key)
    coder_drg, coder_weight, _ = _weight_and_drg(
        session, item=item, key=key, codes=before, abstract=abstract_before
    )
    after, abstract_after = before, abstract_before
    differences: list[diff.Difference] = []
    if decision == "correct":
        assert codes is not None  # noqa: S101 - checked above
        try:
            after, abstract_after, differences = _corrected(
                session,
                item=item,
                key=key,
                before=(before, abstract_before),
                codes=codes,
                abstract=abstract,
                abstract_fields=abstract_fields,
                findings=findings,
                keyed=keyed,
            )
        except ValidationFailed as exc:
            # The coder's codes were opened and the request rolls back: audit the attempt.
            audit_service.record_denied(
                session,
                actor=actor,
                action=audit_service.Action.qa_decision,
                outcome=audit_service.Outcome.failed,
                work_item_id=work_item_id,
                purpose=PURPOSE,
                detail=f"errors={len(exc.details)}",
            )
            raise
    qa_drg, qa_weight, _ = (
        _weight_and_drg(session, item=item, key=key, codes=after, abstract=abstract_after)
        if differences
        else (coder_drg, coder_weight, item.final_drg_version)
    )
    added = sum(1 for d in differences if d.kind == "added" and d.target != "abstract")
    payment = (
        round((qa_weight - coder_weight) * get_settings().qa_base_rate, 2)
        if qa_weight is not None and coder_weight is not None
        else None
    )
    review = QaReview(
        work_item_id=work_item_id,
        coder_id=item.coded_by_id,
        reviewer_id=actor.user_id,
        outcome=outcome,
        coder_drg=item.final_drg or coder_drg,
        qa_drg=qa_drg if differences else (item.final_drg or coder_drg),
        coder_weight=coder_weight,
        qa_weight=qa_weight,
        payment_difference=payment,
        codes_reviewed=len(before.diagnoses) + len(before.procedures) + added,
    )
    session.add(review)
    session.flush()
    assert review.id is not None  # noqa: S101
    if reason.strip():  # free text that may name the patient: sealed, never in clear
        review.sealed_reason = key.seal(
            table=QaReview.__tablename__, row_id=review.id, field="reason", value=reason[:500]
        )
    version = taxonomy().version
    if keyed is not None:
        findings = [keyed.get(d.key, FindingIn()) for d in differences]
    for n, d in enumerate(differences):
        given = (findings or [])[n]
        finding = QaFinding(
            review_id=review.id,
            work_item_id=work_item_id,
            coder_id=item.coded_by_id,
            reviewer_id=actor.user_id,
            kind=d.kind,
            target=d.target,
            position=d.position,
            abstract_field=d.field,
            principal=d.principal,
            category=given.category or "",
            taxonomy_version=version,
            sealed_detail=b"",
        )
        session.add(finding)
        session.flush()
        assert finding.id is not None  # noqa: S101
        finding.sealed_detail = key.seal(
            table=QaFinding.__tablename__,
            row_id=finding.id,
            field="detail",
            value={
                "before": d.before,
                "after": d.after,
                "comment": given.comment.strip(),
                # what undoing it needs, should a supervisor overturn the finding
                "restore": diff.restore_data(d, before, abstract_before),
            },
        )
    # item.final_drg stays the DRG as submitted (the case-mix reports' "final at submit");
    # the DRG after QA is the review's qa_drg, and the claim groups the corrected codes.
    # A retrospective review accepted goes back to billed as it was; corrected, it is billed
    # again as a replacement claim (remittance.replacement_of sees the qa-corrected event).
    to_status = (
        Status.billed
        if outcome == "accepted" and is_retrospective(session, work_item_id=work_item_id)
        else Status.ready_for_billing
    )
    queue_service.transition(
        session, item=item, to_status=to_status, actor=actor, action=f"qa-{outcome}"
    )
    return item


# ---------------------------------------------------------------- findings


@dataclass(frozen=True)
class FindingRow:
    """A finding with the names it is shown with (no codes: those are sealed)."""

    finding: QaFinding
    coder: str
    reviewer: str
    review: QaReview

    @property
    def category_label(self) -> str:
        """The category's label in the shipped taxonomy."""
        return taxonomy().label(self.finding.category)

    @property
    def kind_label(self) -> str:
        """The kind of difference in words."""
        return diff.KIND_LABELS.get(self.finding.kind, self.finding.kind)


def _user_id(session: Session, username: str) -> int | None:
    return session.exec(select(User.id).where(User.username == username)).first()


def list_findings(
    session: Session,
    *,
    actor: Principal,
    coder: str | None = None,
    status: str | None = None,
    review_id: int | None = None,
) -> list[FindingRow]:
    """Findings, newest first; a coder sees only their own (403 asking for another's)."""
    if status is not None and status not in FINDING_STATUSES:
        raise ValidationFailed(
            "Unknown finding status.",
            details=[{"loc": ["query", "status"], "msg": f"one of {', '.join(FINDING_STATUSES)}"}],
        )
    supervisor = actor.has_role(Role.supervisor)
    if not supervisor and coder is not None and coder != actor.name:
        raise Forbidden("A coder sees only their own QA findings.")
    reviewer = User.__table__.alias("reviewer")  # type: ignore[attr-defined]
    stmt = (
        select(QaFinding, User.username, reviewer.c.username, QaReview)
        .join(User, col(User.id) == col(QaFinding.coder_id))
        .join(reviewer, reviewer.c.id == col(QaFinding.reviewer_id))
        .join(QaReview, col(QaReview.id) == col(QaFinding.review_id))
        .order_by(col(QaFinding.id).desc())
        .limit(1000)
    )
    if not supervisor:
        stmt = stmt.where(QaFinding.coder_id == actor.user_id)
    elif coder is not None:
        stmt = stmt.where(QaFinding.coder_id == (_user_id(session, coder) or -1))
    if status is not None:
        stmt = stmt.where(QaFinding.status == status)
    if review_id is not None:
        stmt = stmt.where(QaFinding.review_id == review_id)
    return [
        FindingRow(finding=f, coder=c, reviewer=r, review=rv) for f, c, r, rv in session.exec(stmt)
    ]


def item_findings(session: Session, *, work_item_id: int) -> list[FindingRow]:
    """The QA findings of one item, oldest first (no access check: callers hold a view)."""
    reviewer = User.__table__.alias("reviewer")  # type: ignore[attr-defined]
    rows = session.exec(
        select(QaFinding, User.username, reviewer.c.username, QaReview)
        .join(User, col(User.id) == col(QaFinding.coder_id))
        .join(reviewer, reviewer.c.id == col(QaFinding.reviewer_id))
        .join(QaReview, col(QaReview.id) == col(QaFinding.review_id))
        .where(QaFinding.work_item_id == work_item_id)
        .order_by(col(QaFinding.id))
    )
    return [FindingRow(finding=f, coder=c, reviewer=r, review=rv) for f, c, r, rv in rows]


def _finding(session: Session, *, finding_id: int) -> QaFinding:
    finding = session.exec(
        select(QaFinding).where(QaFinding.id == finding_id).with_for_update()
    ).first()
    if finding is None:
        raise NotFound("No such QA finding.")
    return finding


def respond(
    session: Session, *, actor: Principal, finding_id: int, agree: bool, reason: str = ""
) -> QaFinding:
    """The coder agrees with a finding on their own chart, or rebuts it with a reason (it then
    waits for a supervisor); 422 once it was answered or decided."""
    finding = _finding(session, finding_id=finding_id)
    if finding.coder_id != actor.user_id:
        audit_service.record_denied(
            session,
            actor=actor,
            action=audit_service.Action.qa_response,
            work_item_id=finding.work_item_id,
            purpose=PURPOSE,
            detail=f"finding={finding_id} not the caller's",
        )
        raise NotFound("No such QA finding.")
    if finding.status != "open":
        final = (
            "the supervisor's decision is final"
            if finding.status
            in (
                "upheld",
                "overturned",
            )
            else "each finding is answered once"
        )
        raise ValidationFailed(
            f"This finding was already answered ({finding.status}): {final}.",
            details=[{"loc": ["agree"], "msg": f"finding is {finding.status}"}],
        )
    if not agree and not reason.strip():
        raise ValidationFailed(
            "Say why you disagree: the supervisor decides on your reason.",
            # The field's message is part of the page's: shown once at the top ("...
            # your reason. required to rebut" read as two sentences run together).
            details=[{"loc": ["reason"], "msg": "Say why you disagree"}],
        )
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.qa_response,
        work_item_id=finding.work_item_id,
        purpose=PURPOSE,
        detail=f"finding={finding_id} {'agreed' if agree else 'rebutted'}",
    )
    if reason.strip():
        finding.sealed_response = _seal_reason(session, finding, field="response", reason=reason)
    finding.status = "agreed" if agree else "rebutted"
    finding.responded_at = utcnow()
    session.add(finding)
    session.flush()
    return finding


def _seal_reason(session: Session, finding: QaFinding, *, field: str, reason: str) -> bytes:
    """A coder's or supervisor's reason on a finding (it may name the patient), sealed."""
    assert finding.id is not None  # noqa: S101
    return records_service.seal_for_item(
        session,
        work_item_id=finding.work_item_id,
        table=QaFinding.__tablename__,
        row_id=finding.id,
        field=field,
        value=reason.strip()[:500],
    )


OVERTURNED = "qa-overturned"  # the event of a coder's code restored on an overturned finding


def decide_rebuttal(
    session: Session, *, actor: Principal, finding_id: int, uphold: bool, reason: str = ""
) -> QaFinding:
    """A supervisor other than the reviewer upholds or overturns a rebuttal: final.
    Overturned, the coder's code is restored in the item's codes (`restore_coder_code`)."""
    finding = _finding(session, finding_id=finding_id)
    if finding.status != "rebutted":
        raise ValidationFailed(
            f"Only a rebutted finding waits for a decision; this one is {finding.status}.",
            details=[{"loc": ["decision"], "msg": f"finding is {finding.status}"}],
        )
    if actor.user_id in (finding.reviewer_id, finding.coder_id):
        raise Forbidden("A second reviewer decides a rebuttal: not its reviewer or its coder.")
    detail = f"rebuttal finding={finding_id} {'upheld' if uphold else 'overturned'}"
    if uphold:
        audit_service.record(
            session,
            actor=actor,
            action=audit_service.Action.qa_decision,
            work_item_id=finding.work_item_id,
            purpose=PURPOSE,
            detail=detail,
        )
    else:  # the item's codes are opened to restore the coder's: an audited use, first
        _refuse_while_coded(session, work_item_id=finding.work_item_id)
        key = records_service.open_for_use(
            session,
            actor=actor,
            work_item_id=finding.work_item_id,
            action=audit_service.Action.qa_decision,
            purpose=PURPOSE,
            detail=detail,
        )
        restore_coder_code(session, actor=actor, finding=finding, key=key)
    if reason.strip():
        finding.sealed_decision = _seal_reason(session, finding, field="decision", reason=reason)
    finding.status = "upheld" if uphold else "overturned"
    finding.decided_by_id = actor.user_id
    finding.decided_at = utcnow()
    session.add(finding)
    session.flush()
    return finding


def _refuse_while_coded(session: Session, *, work_item_id: int) -> None:
    """An overturn rewrites the item's codes: never under a coder who has the chart open (their
    screen would be stale, and their next save would undo the restore). The item stays locked
    for the rest of the decision, so no one claims it in between."""
    item = queue_service.lock_item(session, work_item_id)
    if (
        item is not None
        and item.status == Status.in_progress
        and item.lease_expires_at is not None
        and item.lease_expires_at > utcnow()
    ):
        raise Conflict(
            f"Chart #{work_item_id} is being coded right now. Decide this rebuttal once the "
            "coder has submitted or released it: overturning it now would change the codes "
            "on their screen.",
            code="chart_in_progress",
        )


def _regroup_review(
    session: Session,
    *,
    review_id: int,
    item: WorkItem,
    key: ItemKey,
    codes: Codes,
    abstract: Abstract,
) -> None:
    """The review's DRG after QA follows an overturn: grouped again from the restored codes,
    with its weight and payment difference, so that the DRG-shift report and the review page
    no longer show a shift the deciding supervisor took back. Outpatient reviews have none."""
    review = session.get(QaReview, review_id)
    if review is None or review.qa_drg is None:
        return
    drg, weight, _ = _weight_and_drg(session, item=item, key=key, codes=codes, abstract=abstract)
    if drg is None:  # the restored codes group to nothing: keep what the review said
        return
    review.qa_drg = drg
    review.qa_weight = weight
    review.payment_difference = (
        round((weight - review.coder_weight) * get_settings().qa_base_rate, 2)
        if weight is not None and review.coder_weight is not None
        else None
    )
    session.add(review)


def restore_coder_code(
    session: Session, *, actor: Principal, finding: QaFinding, key: ItemKey
) -> None:
    """Undo an overturned finding's difference in the item's codes (or abstract), and say so
    on the item's history (`qa-overturned`). A chart billed since the correction goes back
    to ready for billing: its next claim replaces the one billed, as after a retrospective
    correction (`remittance.replacement_of`)."""
    assert finding.id is not None  # noqa: S101
    item = queue_service.lock_item(session, finding.work_item_id)
    assert item is not None  # noqa: S101 - a finding's item exists
    opened = _open_field(key, finding_id=finding.id, field="detail", sealed=finding.sealed_detail)
    data = (opened or {}).get("restore")
    where = f"finding {finding.id}: {diff.KIND_LABELS.get(finding.kind, finding.kind)}"

    def note(reason: str) -> None:  # the overturn on the item's history, status unchanged
        queue_service.record_event(
            session,
            item_id=finding.work_item_id,
            actor_id=actor.user_id,
            action=OVERTURNED,
            from_status=item.status,
            to_status=item.status,
            owner_id=item.lease_owner_id,
            reason=f"{where}; {reason}",
        )

    if data is None:  # a finding stored before findings kept what undoing them needs
        note("restore the coder's code by hand (no restore data)")
        return
    codes = coding_service.get_codes(session, key=key)
    abstract = abstract_service.get_abstract(session, key=key)
    codes_after, abstract_after = diff.restore(
        kind=finding.kind,
        target=finding.target,
        field=finding.abstract_field,
        data=data,
        codes=codes,
        abstract=abstract,
    )
    if codes_after != codes:
        coding_service.store_codes(session, work_item_id=item.id or 0, codes=codes_after, key=key)
    if abstract_after != abstract:
        abstract_service.store_abstract(session, key=key, abstract=abstract_after)
    _regroup_review(
        session,
        review_id=finding.review_id,
        item=item,
        key=key,
        codes=codes_after,
        abstract=abstract_after,
    )
    if item.status == Status.billed:
        queue_service.transition(
            session,
            item=item,
            to_status=Status.ready_for_billing,
            actor=actor,
            action=OVERTURNED,
            reason=f"{where}; coder's code restored, to bill as a replacement claim",
        )
        return
    note("coder's code restored")


# ---------------------------------------------------------------- one review, opened


@dataclass(frozen=True)
class OpenedFinding:
    """A finding with its sealed fields opened (in memory only, for the page that shows it)."""

    row: FindingRow
    before: str | None
    after: str | None
    comment: str
    response: str | None
    decision_reason: str | None


@dataclass(frozen=True)
class OpenedReview:
    """One review's findings, opened under an audited use."""

    review: QaReview
    coder: str
    reviewer: str
    findings: list[OpenedFinding]


def _open_field(key: ItemKey, *, finding_id: int, field: str, sealed: bytes | None) -> Any:
    if sealed is None:
        return None
    return key.open(table=QaFinding.__tablename__, row_id=finding_id, field=field, sealed=sealed)


def open_finding(*, key: ItemKey, row: FindingRow) -> OpenedFinding:
    """A finding's sealed codes, comment and reasons, with the key of an audited use."""
    f = row.finding
    assert f.id is not None  # noqa: S101
    detail = _open_field(key, finding_id=f.id, field="detail", sealed=f.sealed_detail) or {}
    return OpenedFinding(
        row=row,
        before=detail.get("before"),
        after=detail.get("after"),
        comment=detail.get("comment") or "",
        response=_open_field(key, finding_id=f.id, field="response", sealed=f.sealed_response),
        decision_reason=_open_field(
            key, finding_id=f.id, field="decision", sealed=f.sealed_decision
        ),
    )


def open_review(session: Session, *, actor: Principal, review_id: int) -> OpenedReview:
    """A review's findings with their codes and comments, for its coder or a supervisor;
    the use is audited (`qa-finding-view`) before anything is opened."""
    review = session.get(QaReview, review_id)
    allowed = review is not None and (
        actor.has_role(Role.supervisor) or review.coder_id == actor.user_id
    )
    if review is None or not allowed:
        audit_service.record_denied(
            session,
            actor=actor,
            action=audit_service.Action.qa_finding_view,
            work_item_id=review.work_item_id if review is not None else None,
            purpose=PURPOSE,
            detail=f"review={review_id}",
        )
        raise NotFound("No such QA review.")
    assert review.id is not None  # noqa: S101
    rows = list_findings(session, actor=actor, review_id=review.id)
    key = records_service.open_for_use(
        session,
        actor=actor,
        work_item_id=review.work_item_id,
        action=audit_service.Action.qa_finding_view,
        purpose=PURPOSE,
        detail=f"review={review_id} findings={len(rows)}",
    )
    opened = [open_finding(key=key, row=row) for row in rows]
    coder = session.get(User, review.coder_id)
    reviewer = session.get(User, review.reviewer_id)
    return OpenedReview(
        review=review,
        coder=coder.username if coder else "",
        reviewer=reviewer.username if reviewer else "",
        findings=sorted(opened, key=lambda o: o.row.finding.id or 0),
    )


def my_reviews(session: Session, *, actor: Principal) -> list[tuple[QaReview, int, int]]:
    """The caller's reviewed charts, newest first: (review, findings, findings still open)."""
    reviews = session.exec(
        select(QaReview)
        .where(QaReview.coder_id == actor.user_id)
        .order_by(col(QaReview.id).desc())
        .limit(500)
    ).all()
    counts: dict[int, list[int]] = {}
    for f in session.exec(select(QaFinding).where(QaFinding.coder_id == actor.user_id)).all():
        c = counts.setdefault(f.review_id, [0, 0])
        c[0] += 1
        c[1] += f.status == "open"
    return [(r, *counts.get(r.id or 0, [0, 0])) for r in reviews]  # type: ignore[misc]
