"""Routing rules: ordered rules on facility, encounter class, service type and payer class.

The first active rule (by position, then id) whose filled fields all match (case-insensitive)
picks the queue and the priority of a new encounter, and may set its billing class
(`professional`: professional fee, billed on an 837P); no match goes to `default`.
Supervisors and admins manage the rules (audited as `queue-admin`, ids only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.errors import NotFound, ValidationFailed
from server.models import Queue, RoutingRule
from server.queue import service as queue_service
from server.records.schemas import RoutingRuleIn, RoutingRuleView, safe_errors

DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class Route:
    """Where a new encounter goes."""

    queue_id: int
    queue: str
    priority: int
    set_class: str | None = None


def _matches(rule_value: str | None, value: str | None) -> bool:
    if rule_value is None or rule_value == "":
        return True
    return value is not None and rule_value.strip().casefold() == value.strip().casefold()


def _ordered(session: Session, *, active_only: bool) -> list[tuple[RoutingRule, Queue]]:
    stmt = select(RoutingRule, Queue).join(Queue, col(Queue.id) == col(RoutingRule.queue_id))
    if active_only:
        stmt = stmt.where(col(RoutingRule.is_active).is_(True))
    rows = session.exec(stmt.order_by(col(RoutingRule.position), col(RoutingRule.id))).all()
    return [(rule, queue) for rule, queue in rows]


def route(
    session: Session,
    *,
    facility: str | None,
    encounter_class: str,
    service_type: str | None,
    payer_class: str | None,
) -> Route:
    """The queue and priority for an encounter with these clear fields."""
    for rule, queue in _ordered(session, active_only=True):
        if (
            _matches(rule.facility, facility)
            and _matches(rule.encounter_class, encounter_class)
            and _matches(rule.service_type, service_type)
            and _matches(rule.payer_class, payer_class)
        ):
            assert queue.id is not None  # noqa: S101
            return Route(
                queue_id=queue.id,
                queue=queue.name,
                priority=rule.priority,
                set_class=rule.set_class,
            )
    default = session.exec(select(Queue).where(Queue.name == DEFAULT_QUEUE)).first()
    if default is None:
        default = queue_service.create_queue(session, name=DEFAULT_QUEUE)
    assert default.id is not None  # noqa: S101
    return Route(queue_id=default.id, queue=default.name, priority=0)


def parse_rule(fields: dict[str, Any]) -> RoutingRuleIn:
    """A rule from plain fields (the page form), or ValidationFailed listing every problem."""
    try:
        return RoutingRuleIn.model_validate(fields)
    except ValidationError as exc:
        raise ValidationFailed("The rule is not valid.", details=safe_errors(exc)) from None


def _view(rule: RoutingRule, queue: Queue) -> RoutingRuleView:
    assert rule.id is not None  # noqa: S101
    return RoutingRuleView(
        id=rule.id,
        position=rule.position,
        facility=rule.facility,
        encounter_class=rule.encounter_class,
        service_type=rule.service_type,
        payer_class=rule.payer_class,
        queue=queue.name,
        priority=rule.priority,
        is_active=rule.is_active,
        set_class=rule.set_class,
    )


def list_rules(session: Session) -> list[RoutingRuleView]:
    """Every rule in the order they are tried."""
    return [_view(rule, queue) for rule, queue in _ordered(session, active_only=False)]


def _apply(session: Session, rule: RoutingRule, data: RoutingRuleIn) -> Queue:
    queue = queue_service.get_queue(session, name=data.queue.lower())
    assert queue.id is not None  # noqa: S101
    rule.position = data.position
    rule.facility = data.facility or None
    rule.encounter_class = data.encounter_class.value if data.encounter_class else None
    rule.service_type = data.service_type or None
    rule.payer_class = data.payer_class or None
    rule.queue_id = queue.id
    rule.priority = data.priority
    rule.is_active = data.is_active
    rule.set_class = data.set_class.value if data.set_class else None
    return queue


def _audit(session: Session, actor: Principal, what: str, rule_id: int | None) -> None:
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.queue_admin,
        purpose=None,
        detail=f"{what} routing_rule={rule_id}",
    )


def create_rule(session: Session, *, actor: Principal, data: RoutingRuleIn) -> RoutingRuleView:
    """Add a rule (NotFound if its queue does not exist)."""
    rule = RoutingRule(queue_id=0)
    queue = _apply(session, rule, data)
    session.add(rule)
    session.flush()
    _audit(session, actor, "create", rule.id)
    return _view(rule, queue)


def _rule(session: Session, rule_id: int) -> RoutingRule:
    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound("No such routing rule.")
    return rule


def update_rule(
    session: Session, *, actor: Principal, rule_id: int, data: RoutingRuleIn
) -> RoutingRuleView:
    """Replace a rule's fields."""
    rule = _rule(session, rule_id)
    queue = _apply(session, rule, data)
    session.add(rule)
    session.flush()
    _audit(session, actor, "update", rule.id)
    return _view(rule, queue)


def delete_rule(session: Session, *, actor: Principal, rule_id: int) -> None:
    """Remove a rule."""
    rule = _rule(session, rule_id)
    session.delete(rule)
    session.flush()
    _audit(session, actor, "delete", rule_id)
