"""Input every route refuses before it runs, in one place.

NUL characters: PostgreSQL cannot store them in text, so one that reached a query or an
audit row (a search filter, a typed username) turned into a 500. No legitimate query
parameter, path parameter or form field carries one; they are refused with a 422 that
names the field and never echoes the value.
"""

from __future__ import annotations

from fastapi import Request

from server.errors import ValidationFailed

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def refuse_nul(request: Request) -> None:
    """422 naming the first query, path or form field that holds a NUL character."""
    where: tuple[str, str] | None = None
    if "\x00" in request.url.query or "%00" in request.url.query:
        where = next(
            (("query", k) for k, v in request.query_params.multi_items() if "\x00" in k + v),
            None,
        )
    if where is None:
        where = next(
            (("path", k) for k, v in request.path_params.items() if "\x00" in str(v)), None
        )
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if where is None and ctype in FORM_TYPES:
        form = await request.form()  # parsed once: the route's own Form() reads the same
        where = next(
            (
                ("form", k)
                for k, v in form.multi_items()
                if "\x00" in k or (isinstance(v, str) and "\x00" in v)
            ),
            None,
        )
    if where is None:
        return
    kind, name = where
    shown = name.replace("\x00", "?")[:64]
    raise ValidationFailed(
        f"The {kind} field {shown!r} contains a NUL character, which is not allowed.",
        details=[{"loc": [kind, shown], "msg": "must not contain a NUL character"}],
    )
