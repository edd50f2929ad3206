"""Walk the app's routes (FastAPI nests included routers) with their declared access rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from server.auth.deps import AccessRule


def all_routes(app: FastAPI) -> Iterator[BaseRoute]:
    """Every route of `app`, included routers flattened."""
    for ctx in iter_route_contexts(app.routes):
        yield ctx.original_route


def access_rules(dependant: Any) -> list[AccessRule]:
    """The access rules a route's dependency tree declares."""
    found = [dependant.call] if isinstance(dependant.call, AccessRule) else []
    for sub in dependant.dependencies:
        found += access_rules(sub)
    return found


def api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """The FastAPI routes (pages and JSON) of `app`."""
    for route in all_routes(app):
        if isinstance(route, APIRoute):
            yield route
