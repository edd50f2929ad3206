"""Route matching without scanning the routers a path cannot belong to (issue 23).

FastAPI matches a request by trying every route of every included router in order, and the
router that matches is scanned twice (once to find it, once to pick its route). With ~180
routes in 15 routers that was a fifth of Next's Python time, and more for routes of the
later routers (the audit search: ~270 µs of matching). `skip_unrelated_paths(router)` gives a
domain router a cheap first look: a route can only match a path that starts with the route's
literal segments (those before its first parameter, at most three), so a router none of
whose routes' literal starts fit the path answers "no match" at once. The routers that may
match are scanned exactly as before, in the same order: which route answers is unchanged.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette._utils import get_route_path
from starlette.routing import Match
from starlette.types import Scope

DEPTH = 3  # literal segments compared at most


def literal_start(path: str) -> tuple[str, ...]:
    """The segments of a route's path before its first parameter (at most DEPTH)."""
    start: list[str] = []
    for segment in path.split("/")[1:][:DEPTH]:
        if "{" in segment:
            break
        start.append(segment)
    return tuple(start)


def starts_of(router: APIRouter) -> dict[int, frozenset[tuple[str, ...]]] | None:
    """{length: literal starts} of the router's routes; None if a route has no plain path."""
    by_length: dict[int, set[tuple[str, ...]]] = {}
    for route in router.routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str) or not path.startswith("/"):
            return None
        start = literal_start(path)
        by_length.setdefault(len(start), set()).add(start)
    return {n: frozenset(s) for n, s in sorted(by_length.items())}


def may_match(starts: dict[int, frozenset[tuple[str, ...]]], path: str) -> bool:
    """Whether a route with one of `starts` could match `path`."""
    return _fits(starts, path_starts(path))


def path_starts(path: str) -> tuple[tuple[str, ...], ...]:
    """The path's first 0..DEPTH segments, each as a tuple (index n: the first n)."""
    segments = path.split("/", DEPTH + 1)[1:]
    return tuple(tuple(segments[:n]) for n in range(DEPTH + 1))


def _fits(
    starts: dict[int, frozenset[tuple[str, ...]]], prefixes: tuple[tuple[str, ...], ...]
) -> bool:
    for n, keys in starts.items():
        if prefixes[n] in keys:
            return True
    return False


_SCOPE_KEY = "chartdesk.path_starts"


def _scope_starts(scope: Scope) -> tuple[tuple[str, ...], ...]:
    """path_starts of the request's path, computed once per path for all the routers."""
    path = get_route_path(scope)
    cached = scope.get(_SCOPE_KEY)
    if cached is not None and cached[0] == path:
        return cached[1]  # type: ignore[no-any-return]
    prefixes = path_starts(path)
    scope[_SCOPE_KEY] = (path, prefixes)
    return prefixes


def skip_unrelated_paths(router: APIRouter) -> APIRouter:
    """Make `router` answer "no match" without a scan for paths none of its routes fit."""
    if hasattr(router, "path_starts"):
        return router  # already (apps are built more than once in tests)
    starts = starts_of(router)
    if starts is None or () in starts.get(0, frozenset()):
        return router  # a route starting with a parameter may match anything
    scan = router.matches

    def matches(scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and not _fits(starts, _scope_starts(scope)):
            return Match.NONE, {}
        return scan(scope)

    router.matches = matches  # type: ignore[method-assign]
    router.path_starts = starts  # type: ignore[attr-defined]  # for the test
    return router
