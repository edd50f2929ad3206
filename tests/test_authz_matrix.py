"""The authorization matrix: every route against every kind of caller, one test case per cell.

tests/authz_matrix.yaml lists, for each route (`METHOD /path`), what each caller gets:
`allowed` (the access rule lets the caller through: the answer is not a 401/403 refusal; it
may still be 404/409/422 on its body or state), `401`, `403`, or `404` (hidden: a coder
asking for another coder's item). A route missing from the file fails the suite; add it with

    .venv/bin/python -m tests.test_authz_matrix --write

which keeps every existing entry, fills new routes from their declared access rule, and
prints what it added, for review (the "other-coder" column is a guess there).

Callers: anonymous; a person holding only one role (coder, supervisor, biller, compliance,
admin, provider); a service token holding only one scope; and, on item routes, "other-coder":
a coder in the same queue asking for the item leased to `coder`.

The `provider` column (issue 18) may be left out of a row written before it: the cell is
then what the route's declared rule implies (a provider holds no other role, so every
role-guarded route refuses them with 403) and is still called live.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.auth.deps import AccessRule, Public
from tests.support.databases import Databases
from tests.support.routes import access_rules, api_routes

MATRIX_FILE = Path(__file__).with_name("authz_matrix.yaml")
ROLES = ("coder", "supervisor", "biller", "compliance", "admin", "provider")
OPTIONAL = {"provider"}  # derived from the declared rule where a row leaves it out
SCOPES = ("ingest", "billing", "audit")
CALLERS = ("anonymous", *ROLES, *(f"token-{s}" for s in SCOPES))
OTHER = "other-coder"
OUTCOMES = {"allowed", "401", "403", "404"}
# Refusals by the access rules (deps.py); other 401/403 codes come from the request itself.
REFUSAL_CODES = {
    401: {"not_authenticated", "session_expired"},
    403: {"forbidden", "csrf_failed", "bad_origin"},
}
# Calls that end the caller's own session: they get a fresh session of their own.
ENDS_SESSION = {"DELETE /api/v1/session", "POST /logout", "POST /auth/oidc/logout"}
ITEM_PATH = re.compile(r"^(/api/v1)?/work/\{[a-z_]*id\}")
PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")


# ---------------------------------------------------------------- the route table


def route_keys(app: FastAPI) -> dict[str, list[AccessRule]]:
    """`METHOD /path` for every route and method (HEAD aside), with its access rules."""
    keys: dict[str, list[AccessRule]] = {}
    for route in api_routes(app):
        for method in sorted(route.methods - {"HEAD"}):
            keys[f"{method} {route.path}"] = access_rules(route.dependant)
    return keys


def is_item_route(key: str) -> bool:
    """Routes on one work item, where another coder's item must stay hidden."""
    return bool(ITEM_PATH.match(key.split(" ", 1)[1]))


def derive(key: str, rules: list[AccessRule]) -> dict[str, str]:
    """The outcomes a route's declared rule implies (for new routes; review them)."""
    row: dict[str, str] = {}
    rule = rules[0] if rules else None
    for caller in CALLERS:
        if rule is None or isinstance(rule, Public):
            row[caller] = "allowed"
            continue
        roles: tuple[str, ...] = getattr(rule, "roles", ())
        scopes: tuple[str, ...] = getattr(rule, "scopes", ())
        if caller == "anonymous":
            row[caller] = "401"
        elif caller.startswith("token-"):
            row[caller] = "allowed" if caller[6:] in scopes else "403"
        else:
            ok = caller in roles or (not roles and not scopes)
            row[caller] = "allowed" if ok else "403"
    if is_item_route(key):
        row[OTHER] = "404" if row["coder"] == "allowed" else row["coder"]
    return row


@functools.cache
def _load() -> dict[str, Any]:
    """The data file, parsed once per run (1,788 cases read it; one parse is ~60 ms)."""
    if not MATRIX_FILE.exists():
        return {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data: dict[str, Any] = yaml.load(MATRIX_FILE.read_text(), Loader=loader) or {}  # noqa: S506
    return data


def load_matrix() -> dict[str, dict[str, str]]:
    """The data file as {route: {caller: outcome}} with outcomes as strings."""
    routes = _load().get("routes", {})
    return {k: {c: str(v) for c, v in row.items()} for k, row in routes.items()}


def load_bodies() -> dict[str, Any]:
    """Request bodies for routes that must get past body validation (e.g. to show a 404)."""
    bodies: dict[str, Any] = _load().get("bodies") or {}
    return bodies


def _sort_key(key: str) -> tuple[str, str]:
    method, path = key.split(" ", 1)
    return path, method


def write_matrix(app: FastAPI) -> list[str]:
    """Rewrite the data file: existing rows kept, new routes derived, gone routes dropped."""
    current = load_matrix()
    keys = route_keys(app)
    added = [k for k in keys if k not in current]
    rows = {k: current.get(k) or derive(k, rules) for k, rules in keys.items()}
    width = max(len(k) for k in rows) + 3
    lines = [
        "# Authorization matrix: what each caller gets from each route. See",
        "# tests/test_authz_matrix.py for the meaning of each value and how to add routes.",
        "# allowed = let through (may still be 404/409/422 on its body); 401, 403; 404 = hidden.",
        f"callers: [{', '.join(CALLERS)}, {OTHER}]",
        "routes:",
    ]
    for key in sorted(rows, key=_sort_key):
        row = rows[key]
        cells = ", ".join(f"{c}: {row[c]}" for c in (*CALLERS, OTHER) if c in row)
        lines.append(f"  {json.dumps(key) + ':':<{width}} {{{cells}}}")
    bodies = {k: v for k, v in load_bodies().items() if k in rows}
    lines.append("# A valid body per route where an empty one would stop at validation (422).")
    lines.append("bodies:" + ("" if bodies else " {}"))
    for key in sorted(bodies, key=_sort_key):
        lines.append(f"  {json.dumps(key)}: {json.dumps(bodies[key])}")
    MATRIX_FILE.write_text("\n".join(lines) + "\n")
    _load.cache_clear()
    return added


# ---------------------------------------------------------------- a world to call into


@dataclass
class World:
    """One app and database with a signed-in client per caller (shared by the cells)."""

    app: Any
    clients: dict[str, TestClient] = field(default_factory=dict)
    accounts: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    def new_client(self) -> TestClient:
        client = TestClient(self.app, base_url="http://testserver")
        client.__enter__()
        client.headers["Accept"] = "application/json"
        return client

    def signed_in(self, caller: str) -> TestClient:
        from tests.support.factories import sign_in

        client = self.new_client()
        sign_in(client, self.accounts[caller])
        return client


@pytest.fixture
def keyring() -> None:
    """Overrides conftest's per-test keyring: the module's world keeps one keyring."""


def _make_item(coder: TestClient) -> str:
    """One encounter (the repo's own synthetic data), leased to `coder`: its id.

    The item routes' cells (404 for another coder, "allowed" for the holder) only mean
    something on a real item, so a failure here fails the module instead of falling back
    to an id that does not exist.
    """
    from tests.support.factories import make_encounter

    made = make_encounter(queue="default")
    r = coder.post("/api/v1/work/next", json={})
    assert r.status_code == 200, f"the matrix's coder could not claim its item: {r.text}"
    assert r.json()["id"] == made, (r.json()["id"], made)
    return str(made)


@pytest.fixture(scope="module")
def world(
    backend: str,
    databases: Databases,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    from server.keyring import init_keyring
    from tests.conftest import require_backend, reset_caches
    from tests.support.factories import make_token, make_user

    require_backend(backend, databases)
    tmp = tmp_path_factory.mktemp("matrix")
    url = databases.create(backend, tmp, prefix="matrix")
    with pytest.MonkeyPatch.context() as mp:
        key_path = tmp / "keyring.json"
        init_keyring(key_path)
        mp.setenv("CHARTDESK_KEYRING_FILE", str(key_path))
        mp.setenv("CHARTDESK_DATABASE_URL", url)
        mp.setenv("CHARTDESK_SIGNIN_RATE_PER_MINUTE", "10000")
        mp.setenv("CHARTDESK_SIGNIN_ACCOUNT_RATE_PER_MINUTE", "10000")
        mp.setenv("CHARTDESK_TOKEN_RATE_PER_MINUTE", "100000")
        mp.setenv("CHARTDESK_TOKEN_IP_RATE_PER_MINUTE", "100000")
        reset_caches()
        from server.main import create_app

        world = World(app=create_app())
        for role in ROLES:
            queues = ["default"] if role == "coder" else []
            npi = "1234567893" if role == "provider" else None
            world.accounts[role] = make_user(f"m-{role}", role, queues=queues, npi=npi)
        world.accounts[OTHER] = make_user("m-other-coder", "coder", queues=["default"])
        victim = make_user("m-victim", "coder")
        anonymous = world.new_client()
        world.clients["anonymous"] = anonymous
        for caller in (*ROLES, OTHER):
            world.clients[caller] = world.signed_in(caller)
        for scope in SCOPES:
            client = world.new_client()
            client.headers["Authorization"] = f"Bearer {make_token(f'm-{scope}', scope)}"
            world.clients[f"token-{scope}"] = client
        item = _make_item(world.clients["coder"])
        world.params = {
            "id": item,
            "item_id": item,
            "work_item_id": item,
            "user_id": str(victim.user_id),
            "username": victim.username,
            "name": "default",
            "format": "csv",
        }
        yield world
        for client in world.clients.values():
            client.__exit__(None, None, None)
        reset_caches()
    databases.drop(url)


# ---------------------------------------------------------------- the cases


def _app_for_listing() -> FastAPI:
    from server.main import create_app

    return create_app(check_migrations=False)


def _cells() -> list[Any]:
    matrix = load_matrix()
    rules = route_keys(_app_for_listing())
    cases = []
    for key in sorted(matrix, key=_sort_key):
        row = dict(matrix[key])
        for caller in OPTIONAL - set(row):
            row[caller] = derive(key, rules.get(key, []))[caller]
        for caller, expected in row.items():
            cases.append(pytest.param(key, caller, expected, id=f"{key} [{caller}]"))
    return cases


def test_every_route_is_in_the_matrix_and_every_row_is_a_route():
    keys = route_keys(_app_for_listing())
    matrix = load_matrix()
    missing = sorted(set(keys) - set(matrix), key=_sort_key)
    stale = sorted(set(matrix) - set(keys), key=_sort_key)
    assert not missing, (
        f"routes missing from {MATRIX_FILE.name}: {missing}. "
        "Run `.venv/bin/python -m tests.test_authz_matrix --write` and review the new rows."
    )
    assert not stale, f"rows for routes that no longer exist: {stale}"
    for key, row in matrix.items():
        wanted = set(CALLERS) | ({OTHER} if is_item_route(key) else set())
        assert set(row) in (wanted, wanted - OPTIONAL), f"{key}: callers {sorted(row)}"
        assert set(row.values()) <= OUTCOMES, f"{key}: unknown outcome in {row}"


def test_the_matrix_agrees_with_the_declared_rules():
    """Where a route's declared rule refuses a caller, the file says so too (no "allowed")."""
    matrix = load_matrix()
    for key, rules in route_keys(_app_for_listing()).items():
        row = matrix.get(key)
        if row is None:
            continue  # reported by the test above
        derived = derive(key, rules)
        for caller in CALLERS:
            if derived[caller] != "allowed":
                got = row.get(caller, derived[caller])
                assert got == derived[caller], (key, caller, got)


@pytest.mark.parametrize(("key", "caller", "expected"), _cells())
def test_cell(world: World, key: str, caller: str, expected: str) -> None:
    method, template = key.split(" ", 1)
    path = PARAM.sub(lambda m: world.params.get(m.group(1), "1"), template)
    own_session = key in ENDS_SESSION and caller in (*ROLES, OTHER)
    client = world.signed_in(caller) if own_session else world.clients[caller]
    try:
        body = load_bodies().get(key, {})
        if template.startswith("/api/"):
            response = client.request(method, path, json=body, follow_redirects=False)
        else:  # pages take plain form posts
            response = client.request(method, path, data=body, follow_redirects=False)
    finally:
        if own_session:
            client.__exit__(None, None, None)
    status = response.status_code
    assert status < 500, f"{key} as {caller}: server error {status}"
    try:
        code = response.json().get("error", {}).get("code")
    except (ValueError, AttributeError):
        code = None
    refused = status in REFUSAL_CODES and code in REFUSAL_CODES[status]
    if expected == "allowed":
        assert not refused, f"{key} as {caller}: refused {status} {code}, expected allowed"
    elif expected == "404":
        assert status == 404, f"{key} as {caller}: {status}, expected 404 (hidden)"
    else:
        assert refused, f"{key} as {caller}: {status} {code}, expected refusal {expected}"
        assert str(status) == expected, f"{key} as {caller}: {status}, expected {expected}"


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python -m tests.test_authz_matrix --write")
    os.environ.setdefault("CHARTDESK_ENV", "development")
    new = write_matrix(_app_for_listing())
    print(f"{MATRIX_FILE}: {len(new)} new route(s)")  # noqa: T201
    for key in new:
        print(f"  review: {key}")  # noqa: T201
