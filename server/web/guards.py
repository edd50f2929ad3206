"""Input every route refuses before it runs, in one place.

NUL characters: PostgreSQL cannot store them in text, so one that reached a query or an
audit row (a search filter, a typed username) turned into a 500. No legitimate query
parameter, path parameter, form field or JSON string carries one; they are refused with a
422 that names the field and never echoes the value.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from server.errors import ValidationFailed

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _is_json(ctype: str) -> bool:
    return ctype == "application/json" or (
        ctype.startswith("application/") and ctype.endswith("+json")
    )


def _nul_path(value: Any, path: list[str]) -> list[str] | None:
    """Where in a parsed JSON document a key or string holds a NUL (iteratively)."""
    stack: list[tuple[Any, list[str]]] = [(value, path)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return at
        elif isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    return [*at, key]
                stack.append((child, [*at, key]))
        elif isinstance(node, list):
            stack.extend((child, [*at, str(n)]) for n, child in enumerate(node))
    return None


async def refuse_nul(request: Request) -> None:
    """422 naming the first query, path, form or JSON field that holds a NUL character."""
    where: tuple[str, list[str]] | None = None
    if "\x00" in request.url.query or "%00" in request.url.query:
        where = next(
            (("query", [k]) for k, v in request.query_params.multi_items() if "\x00" in k + v),
            None,
        )
    if where is None:
        where = next(
            (("path", [k]) for k, v in request.path_params.items() if "\x00" in str(v)), None
        )
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if where is None and ctype in FORM_TYPES:
        form = await request.form()  # parsed once: the route's own Form() reads the same
        where = next(
            (
                ("form", [k])
                for k, v in form.multi_items()
                if "\x00" in k or (isinstance(v, str) and "\x00" in v)
            ),
            None,
        )
    # JSON that FastAPI parses into a model (a body parameter). Routes that parse their own
    # body (ingest) validate every field themselves and list all problems at once.
    parses_body = getattr(request.scope.get("route"), "body_field", None) is not None
    if where is None and parses_body and _is_json(ctype):
        body = await request.body()  # read once: the route's own body parsing reuses it
        if b"\\u0000" in body:  # the only way JSON text can hold a NUL
            try:
                found = _nul_path(json.loads(body), [])
            except (ValueError, RecursionError):
                found = None  # not JSON: the route says so
            if found is not None:
                where = ("body", found)
    if where is None:
        return
    kind, names = where
    shown = [name.replace("\x00", "?")[:64] for name in names]
    field = ".".join(shown) or "(the whole body)"
    raise ValidationFailed(
        f"The {kind} field {field!r} contains a NUL character, which is not allowed.",
        details=[{"loc": [kind, *shown], "msg": "must not contain a NUL character"}],
    )
