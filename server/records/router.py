"""HTTP routes of the records domain: ingest (FHIR, JSON) and routing rules (API and page)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from server.auth.deps import IngestDep, RowId, RulesDep, SessionDep
from server.errors import UnsupportedMediaType
from server.queue import service as queue_service
from server.records import routing, service
from server.records.schemas import (
    EncounterClass,
    EncounterIn,
    IngestResult,
    RoutingRuleIn,
    RoutingRuleList,
    RoutingRuleView,
)
from server.web.templates import render

router = APIRouter()

API = "/api/v1"
JSON_TYPES = ("application/json", "application/fhir+json")


async def json_body(request: Request) -> Any:
    """The request body parsed as JSON: 415 for another content type, 400 if not JSON,
    422 if nested too deep (service.parse_json).

    Bodies over CHARTDESK_MAX_BODY_BYTES were already answered 413 by the middleware.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in JSON_TYPES:
        raise UnsupportedMediaType(
            "Send JSON: Content-Type application/fhir+json or application/json."
        )
    return service.parse_json(await request.body())


BodyDep = Annotated[Any, Depends(json_body)]


def _fhir_body_doc() -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/fhir+json": {"schema": {"type": "object"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    }


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """A JSON schema with its `#/$defs/...` references replaced by the definitions."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _encounter_body_doc() -> dict[str, Any]:
    schema = EncounterIn.model_json_schema()
    schema = _inline(schema, schema.pop("$defs", {}))
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


@router.post(
    f"{API}/fhir",
    tags=["ingest"],
    response_model=IngestResult,
    openapi_extra=_fhir_body_doc(),
)
def api_ingest_fhir(session: SessionDep, actor: IngestDep, bundle: BodyDep) -> IngestResult:
    """A FHIR R4 Bundle: each Encounter becomes one work item; all or nothing (422 lists all)."""
    return IngestResult(work_items=service.ingest_fhir(session, actor=actor, bundle=bundle))


@router.post(
    f"{API}/encounters",
    tags=["ingest"],
    response_model=IngestResult,
    openapi_extra=_encounter_body_doc(),
)
def api_ingest_encounter(session: SessionDep, actor: IngestDep, payload: BodyDep) -> IngestResult:
    """One encounter in Chartdesk's JSON form (see README, "Encounter JSON")."""
    return IngestResult(work_items=service.ingest_json(session, actor=actor, payload=payload))


# ---------------------------------------------------------------- routing rules API


@router.get(f"{API}/routing-rules", tags=["routing"], response_model=RoutingRuleList)
def api_rules(session: SessionDep, _: RulesDep) -> RoutingRuleList:
    """Every routing rule in the order they are tried."""
    return RoutingRuleList(items=routing.list_rules(session))


@router.post(
    f"{API}/routing-rules", tags=["routing"], status_code=201, response_model=RoutingRuleView
)
def api_create_rule(session: SessionDep, actor: RulesDep, body: RoutingRuleIn) -> RoutingRuleView:
    """Add a rule."""
    return routing.create_rule(session, actor=actor, data=body)


@router.put(f"{API}/routing-rules/{{rule_id}}", tags=["routing"], response_model=RoutingRuleView)
def api_update_rule(
    session: SessionDep, actor: RulesDep, rule_id: RowId, body: RoutingRuleIn
) -> RoutingRuleView:
    """Replace a rule."""
    return routing.update_rule(session, actor=actor, rule_id=rule_id, data=body)


@router.delete(f"{API}/routing-rules/{{rule_id}}", tags=["routing"], status_code=204)
def api_delete_rule(session: SessionDep, actor: RulesDep, rule_id: RowId) -> Response:
    """Remove a rule."""
    routing.delete_rule(session, actor=actor, rule_id=rule_id)
    return Response(status_code=204)


# ---------------------------------------------------------------- routing rules page


def _page(request: Request, session: SessionDep, *, message: str | None = None) -> Response:
    return render(
        request,
        "records/routing.html",
        {
            "rules": routing.list_rules(session),
            "queues": [q.name for q in queue_service.list_queues(session)],
            "classes": [c.value for c in EncounterClass],
            "message": message,
        },
    )


@router.get("/routing", response_class=HTMLResponse)
def routing_page(request: Request, session: SessionDep, _: RulesDep) -> Response:
    """The routing rules, in order, with a form to add one."""
    return _page(request, session)


@router.post("/routing", response_class=HTMLResponse)
def routing_add(
    request: Request,
    session: SessionDep,
    actor: RulesDep,
    queue: Annotated[str, Form(max_length=64)],
    position: Annotated[int, Form(ge=0, le=100_000)] = 0,
    priority: Annotated[int, Form(ge=-1000, le=1000)] = 0,
    facility: Annotated[str, Form(max_length=200)] = "",
    encounter_class: Annotated[str, Form(max_length=40)] = "",
    service_type: Annotated[str, Form(max_length=100)] = "",
    payer_class: Annotated[str, Form(max_length=100)] = "",
    set_class: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Add a rule from the page form."""
    data = routing.parse_rule(
        {
            "queue": queue,
            "position": position,
            "priority": priority,
            "facility": facility.strip() or None,
            "encounter_class": encounter_class or None,
            "service_type": service_type.strip() or None,
            "payer_class": payer_class.strip() or None,
            "set_class": set_class or None,
        }
    )
    routing.create_rule(session, actor=actor, data=data)
    return RedirectResponse("/routing", status_code=303)


@router.post("/routing/{rule_id}/delete", response_class=HTMLResponse)
def routing_delete(session: SessionDep, actor: RulesDep, rule_id: RowId) -> Response:
    """Remove a rule from the page."""
    routing.delete_rule(session, actor=actor, rule_id=rule_id)
    return RedirectResponse("/routing", status_code=303)
