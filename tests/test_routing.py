"""Route matching skips the routers a path cannot belong to, and never one that could match."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute

from server.main import create_app
from server.web.routing import literal_start, may_match

PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")


def _sample(path: str) -> list[str]:
    """Concrete paths a route's pattern matches, with and without a trailing slash."""
    concrete = PARAM.sub(lambda m: "a/b" if m.group(2) == ":path" else "1", path)
    return [concrete, concrete.rstrip("/") + "/"]


def test_literal_start_stops_at_the_first_parameter_and_three_segments():
    assert literal_start("/api/v1/work/{work_item_id}/hold") == ("api", "v1", "work")
    assert literal_start("/work/{work_item_id}") == ("work",)
    assert literal_start("/") == ("",)
    assert literal_start("/{anything}") == ()


def test_a_router_is_skipped_only_for_paths_none_of_its_routes_match(db_url):
    app = create_app(check_migrations=False)
    routers = [r.original_router for r in app.router.routes if hasattr(r, "original_router")]
    filtered = [r for r in routers if hasattr(r, "path_starts")]
    assert len(filtered) == len(routers)  # every domain router has the first look
    paths = {p for router in routers for route in router.routes for p in _sample(route.path)}
    paths |= {"/", "/nowhere", "/static/app.js", "/api/v1", "/api/v1/unknown/1"}
    checked = 0
    for router in filtered:
        for path in paths:
            if may_match(router.path_starts, path):
                continue
            for route in router.routes:
                assert isinstance(route, APIRoute)
                assert not route.path_regex.match(path), f"{route.path} skipped for {path}"
                checked += 1
    assert checked > 1000


def test_next_and_pages_still_reach_their_routes(client):
    assert client.get("/healthz").status_code == 200
    assert client.post("/api/v1/work/next").status_code == 401  # reached: the rule answered
    assert client.get("/work", follow_redirects=False).status_code == 303
    assert client.get("/nowhere").status_code == 404
