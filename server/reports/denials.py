"""Denials from the payers' 835s: rate and dollars by CARC, payer, queue and coder, and the
procedure codes denied most. Only claims the remittances matched count (unmatched ones are
the biller's list, not a rate). A claim counts as denied when the payer denied it whole or in
part (see billing.x835: patient responsibility and contractual write-downs are no denial).
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from server.billing import x835
from server.csvsafe import SafeWriter
from server.errors import ValidationFailed
from server.models import Queue, RemitAdjustment, RemitClaim, RemitLine, User

GROUPINGS = {"carc": "Reason (CARC)", "payer": "Payer", "queue": "Queue", "coder": "Coder"}
DENIED = ("denied", "partial")
COLUMNS = [
    "group_by",
    "key",
    "description",
    "claims",
    "denied_claims",
    "denial_rate",
    "denied_dollars",
]


@dataclass
class DenialGroup:
    """One row: claims answered, denied (whole or part), the rate and the dollars denied."""

    key: str
    description: str
    claims: int
    denied: int
    dollars: float

    @property
    def rate(self) -> float:
        """Denied claims over claims answered, 0..1."""
        return round(self.denied / self.claims, 4) if self.claims else 0.0


@dataclass
class DeniedCode:
    """A procedure code on denied lines: how often and how many dollars."""

    code: str
    lines: int
    dollars: float


@dataclass
class DenialReport:
    """The denial figures grouped one way, plus the top denied procedure codes."""

    by: str
    claims: int
    denied: int
    dollars: float
    groups: list[DenialGroup]
    top_codes: list[DeniedCode]

    @property
    def rate(self) -> float:
        """Overall denial rate, 0..1."""
        return round(self.denied / self.claims, 4) if self.claims else 0.0


def check_grouping(by: str) -> None:
    """Refuse an unknown grouping with the field named."""
    if by not in GROUPINGS:
        raise ValidationFailed(
            "Unknown grouping.", details=[{"loc": ["by"], "msg": "|".join(GROUPINGS)}]
        )


def _is_denial(a: RemitAdjustment) -> bool:
    return a.group not in ("PR", "CR") and a.reason not in x835.NOT_DENIAL


def report(
    session: Session,
    *,
    by: str = "carc",
    since: datetime | None = None,
    until: datetime | None = None,
    top: int = 10,
) -> DenialReport:
    """Denial rate and dollars grouped `by` carc|payer|queue|coder, and the top codes, over
    the remittances received in [since, until)."""
    check_grouping(by)
    # A payer's reversal (CLP02 = 22) and the answer it undid count neither way.
    stmt = select(RemitClaim).where(
        col(RemitClaim.work_item_id).is_not(None),
        col(RemitClaim.reversed_by_id).is_(None),
        col(RemitClaim.status) != "reversed",
    )
    if since is not None:
        stmt = stmt.where(col(RemitClaim.received_at) >= since)
    if until is not None:
        stmt = stmt.where(col(RemitClaim.received_at) < until)
    claims = session.exec(stmt).all()
    ids = [c.id for c in claims]
    adjs = (
        session.exec(
            select(RemitAdjustment).where(col(RemitAdjustment.remit_claim_id).in_(ids))
        ).all()
        if ids
        else []
    )
    denials = [a for a in adjs if _is_denial(a)]
    total = len(claims)
    denied_claims = [c for c in claims if c.status in DENIED]
    groups: list[DenialGroup] = []
    if by == "carc":
        carc = x835.carc()
        per: dict[str, set[int]] = defaultdict(set)
        dollars: dict[str, int] = defaultdict(int)
        for a in denials:
            per[a.reason].add(a.remit_claim_id)
            dollars[a.reason] += a.amount_cents
        groups = [
            DenialGroup(
                key=reason,
                description=carc.describe(reason) or "not in the shipped CARC list",
                claims=total,
                denied=len(per[reason]),
                dollars=round(dollars[reason] / 100, 2),
            )
            for reason in per
        ]
    else:
        names: dict[int | None, str] = {}
        if by == "queue":
            names = {q.id: q.name for q in session.exec(select(Queue)).all()}
        elif by == "coder":
            names = {u.id: u.username for u in session.exec(select(User)).all()}

        def key(c: RemitClaim) -> str:
            if by == "payer":
                return c.payer_name
            ref = c.queue_id if by == "queue" else c.coder_id
            return names.get(ref, "(none)")

        buckets: dict[str, list[RemitClaim]] = defaultdict(list)
        for c in claims:
            buckets[key(c)].append(c)
        groups = [
            DenialGroup(
                key=k,
                description="",
                claims=len(rows),
                denied=sum(1 for c in rows if c.status in DENIED),
                dollars=round(sum(c.denied_cents for c in rows) / 100, 2),
            )
            for k, rows in buckets.items()
        ]
    groups.sort(key=lambda g: (-g.dollars, -g.denied, g.key))
    return DenialReport(
        by=by,
        claims=total,
        denied=len(denied_claims),
        dollars=round(sum(c.denied_cents for c in denied_claims) / 100, 2),
        groups=groups,
        top_codes=_top_codes(session, denials, top=top),
    )


def _top_codes(session: Session, denials: list[RemitAdjustment], *, top: int) -> list[DeniedCode]:
    by_line: dict[tuple[int, int], int] = defaultdict(int)
    for a in denials:
        if a.line_no is not None:
            by_line[(a.remit_claim_id, a.line_no)] += a.amount_cents
    if not by_line:
        return []
    claim_ids = {c for c, _ in by_line}
    lines = session.exec(
        select(RemitLine).where(col(RemitLine.remit_claim_id).in_(claim_ids))
    ).all()
    count: dict[str, int] = defaultdict(int)
    dollars: dict[str, int] = defaultdict(int)
    for line in lines:
        cents = by_line.get((line.remit_claim_id, line.line_no))
        if cents:
            count[line.code] += 1
            dollars[line.code] += cents
    ranked = sorted(count, key=lambda c: (-count[c], -dollars[c], c))[:top]
    return [DeniedCode(code=c, lines=count[c], dollars=round(dollars[c] / 100, 2)) for c in ranked]


def as_csv(r: DenialReport) -> str:
    """The groups, a total row (key `all`), then the top codes (group_by `top_code`)."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(COLUMNS)
    for g in r.groups:
        writer.writerow(
            [r.by, g.key, g.description, g.claims, g.denied, g.rate, f"{g.dollars:.2f}"]
        )
    writer.writerow([r.by, "all", "", r.claims, r.denied, r.rate, f"{r.dollars:.2f}"])
    for c in r.top_codes:
        writer.writerow(["top_code", c.code, "", "", c.lines, "", f"{c.dollars:.2f}"])
    return out.getvalue()


def as_json(r: DenialReport) -> dict[str, object]:
    """The API's answer."""
    return {
        "by": r.by,
        "claims": r.claims,
        "denied": r.denied,
        "rate": r.rate,
        "denied_amount": r.dollars,
        "groups": [
            {
                "key": g.key,
                "description": g.description,
                "claims": g.claims,
                "denied": g.denied,
                "rate": g.rate,
                "denied_amount": g.dollars,
            }
            for g in r.groups
        ],
        "top_codes": [
            {"code": c.code, "lines": c.lines, "denied_amount": c.dollars} for c in r.top_codes
        ],
    }
