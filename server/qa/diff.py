"""Code-level differences between the coder's codes and the reviewer's: what a QA finding is.

Each difference has a kind (one of `KINDS`), which list it is on, its line number and, for
the abstract, the field. The codes before and after are patient data (they are tied to an
encounter): callers seal them; only the kind, line number and field are kept in clear.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal, get_args

from server.coding.abstract import Abstract
from server.coding.codesets import normalise
from server.coding.schemas import Codes, DiagnosisLine, ProcedureLine

Kind = Literal[
    "added",
    "deleted",
    "revised",
    "resequenced",
    "poa_changed",
    "principal_changed",
    "modifier_units_changed",
    "abstract_changed",
]
KINDS: tuple[str, ...] = get_args(Kind)
KIND_LABELS = {
    "added": "code added",
    "deleted": "code deleted",
    "revised": "code revised",
    "resequenced": "resequenced",
    "poa_changed": "POA changed",
    "principal_changed": "principal diagnosis changed",
    "modifier_units_changed": "modifier or units changed",
    "abstract_changed": "abstract field changed",
}
Target = Literal["dx", "px", "abstract"]


@dataclass(frozen=True)
class Difference:
    """One code-level difference (`before`/`after` are patient data: seal them)."""

    kind: Kind
    target: Target
    position: int | None  # 1-based line (the reviewer's, or the coder's for a deletion)
    before: str | None = None
    after: str | None = None
    principal: bool = False  # the principal diagnosis changed (counts as the settings say)
    field: str | None = None  # the abstract field

    @property
    def key(self) -> str:
        """Which difference this is, without the codes (a worksheet form's row key)."""
        return f"{self.kind}:{self.target}:{self.position or ''}:{self.field or ''}"

    @property
    def summary(self) -> str:
        """Where and what, without the codes (safe for messages and counts)."""
        where = {"dx": "diagnosis", "px": "procedure", "abstract": "abstract"}[self.target]
        at = f" {self.position}" if self.position else ""
        name = f" {self.field}" if self.field else ""
        return f"{KIND_LABELS[self.kind]} ({where}{at}{name})"


def _dx_text(code: str, poa: str | None) -> str:
    return f"{code} POA {poa}" if poa else code


def _px_text(line: tuple[str, str, tuple[str, ...], int]) -> str:
    system, code, modifiers, units = line
    mods = f"-{'-'.join(modifiers)}" if modifiers else ""
    return f"{system} {code}{mods} ×{units}"


def _resequenced(coder: list[str], reviewer: list[str]) -> set[str]:
    """Codes kept by both whose order changed (outside the longest common order)."""
    matcher = difflib.SequenceMatcher(a=coder, b=reviewer, autojunk=False)
    in_order = {
        reviewer[b + k] for a, b, size in matcher.get_matching_blocks() for k in range(size)
    }
    return {code for code in reviewer if code not in in_order}


def diagnoses(before: Codes, after: Codes) -> list[Difference]:
    """Differences on the diagnosis lines (the first is the principal diagnosis)."""
    c = [normalise(d.code) for d in before.diagnoses]
    r = [normalise(d.code) for d in after.diagnoses]
    c_poa = {normalise(d.code): (d.poa or "").upper() or None for d in before.diagnoses}
    r_poa = {normalise(d.code): (d.poa or "").upper() or None for d in after.diagnoses}
    shown_c = {normalise(d.code): d.code.strip() for d in before.diagnoses}
    shown_r = {normalise(d.code): d.code.strip() for d in after.diagnoses}
    out: list[Difference] = []
    used_c: set[str] = set()
    used_r: set[str] = set()
    if c and r and c[0] != r[0]:
        kind: Kind = "resequenced" if r[0] in c else "principal_changed"
        out.append(
            Difference(
                kind=kind,
                target="dx",
                position=1,
                before=shown_c[c[0]],
                after=shown_r[r[0]],
                principal=True,
            )
        )
        used_r.add(r[0])
        used_c.add(r[0])  # the new principal, if the coder had it as a secondary
        if c[0] in r or kind == "principal_changed":
            used_c.add(c[0])  # moved down, or replaced by the new principal
            used_r.add(c[0])
    kept = [code for code in c if code in r and code not in used_c]
    for code in kept:
        if c_poa.get(code) != r_poa.get(code):
            out.append(
                Difference(
                    kind="poa_changed",
                    target="dx",
                    position=r.index(code) + 1,
                    before=_dx_text(shown_c[code], c_poa.get(code)),
                    after=_dx_text(shown_r[code], r_poa.get(code)),
                )
            )
    moved = _resequenced(kept, [code for code in r if code in kept])
    for code in kept:
        if code in moved:
            out.append(
                Difference(
                    kind="resequenced",
                    target="dx",
                    position=r.index(code) + 1,
                    before=shown_c[code],
                    after=shown_r[code],
                )
            )
    used_c.update(kept)
    used_r.update(kept)
    gone = [code for code in c if code not in used_c]
    new = [code for code in r if code not in used_r]
    for code in list(gone):
        twin = next((n for n in new if n[:3] == code[:3]), None)
        if twin is not None:
            out.append(
                Difference(
                    kind="revised",
                    target="dx",
                    position=r.index(twin) + 1,
                    before=_dx_text(shown_c[code], c_poa.get(code)),
                    after=_dx_text(shown_r[twin], r_poa.get(twin)),
                    principal=r.index(twin) == 0,
                )
            )
            gone.remove(code)
            new.remove(twin)
    out.extend(
        Difference(
            kind="deleted",
            target="dx",
            position=c.index(code) + 1,
            before=_dx_text(shown_c[code], c_poa.get(code)),
        )
        for code in gone
    )
    out.extend(
        Difference(
            kind="added",
            target="dx",
            position=r.index(code) + 1,
            after=_dx_text(shown_r[code], r_poa.get(code)),
            principal=r.index(code) == 0 and not c,
        )
        for code in new
    )
    return out


def procedures(before: Codes, after: Codes) -> list[Difference]:
    """Differences on the procedure and service lines."""

    def lines(codes: Codes) -> list[tuple[str, str, tuple[str, ...], int]]:
        return [
            (
                p.system,
                normalise(p.code),
                tuple(sorted(m.strip().upper() for m in p.modifiers if m.strip())),
                p.units,
            )
            for p in codes.procedures
        ]

    c, r = lines(before), lines(after)
    c_keys = [(s, code) for s, code, _, _ in c]
    r_keys = [(s, code) for s, code, _, _ in r]
    out: list[Difference] = []
    kept = [k for k in c_keys if k in r_keys]
    for k in kept:
        old, now = c[c_keys.index(k)], r[r_keys.index(k)]
        if old[2:] != now[2:]:
            out.append(
                Difference(
                    kind="modifier_units_changed",
                    target="px",
                    position=r_keys.index(k) + 1,
                    before=_px_text(old),
                    after=_px_text(now),
                )
            )
    moved = _resequenced(
        [f"{s}:{code}" for s, code in kept],
        [f"{s}:{code}" for s, code in r_keys if (s, code) in kept],
    )
    for k in kept:
        if f"{k[0]}:{k[1]}" in moved:
            out.append(
                Difference(
                    kind="resequenced",
                    target="px",
                    position=r_keys.index(k) + 1,
                    before=_px_text(c[c_keys.index(k)]),
                    after=_px_text(r[r_keys.index(k)]),
                )
            )
    gone = [k for k in c_keys if k not in r_keys]
    new = [k for k in r_keys if k not in c_keys]
    for k in list(gone):
        twin = next((n for n in new if n[0] == k[0] and n[1][:3] == k[1][:3]), None)
        if twin is not None:
            out.append(
                Difference(
                    kind="revised",
                    target="px",
                    position=r_keys.index(twin) + 1,
                    before=_px_text(c[c_keys.index(k)]),
                    after=_px_text(r[r_keys.index(twin)]),
                )
            )
            gone.remove(k)
            new.remove(twin)
    out.extend(
        Difference(
            kind="deleted",
            target="px",
            position=c_keys.index(k) + 1,
            before=_px_text(c[c_keys.index(k)]),
        )
        for k in gone
    )
    out.extend(
        Difference(
            kind="added",
            target="px",
            position=r_keys.index(k) + 1,
            after=_px_text(r[r_keys.index(k)]),
        )
        for k in new
    )
    return out


def abstract(before: Abstract, after: Abstract) -> list[Difference]:
    """One difference per abstract field the reviewer changed."""
    out: list[Difference] = []
    old, new = before.model_dump(), after.model_dump()
    for name in Abstract.model_fields:
        if old.get(name) != new.get(name):
            out.append(
                Difference(
                    kind="abstract_changed",
                    target="abstract",
                    position=None,
                    field=name,
                    before=None if old.get(name) is None else str(old[name]),
                    after=None if new.get(name) is None else str(new[name]),
                )
            )
    return out


def differences(
    before: Codes,
    after: Codes,
    *,
    abstract_before: Abstract | None = None,
    abstract_after: Abstract | None = None,
) -> list[Difference]:
    """Every difference, diagnoses first, then procedures, then the abstract."""
    out = diagnoses(before, after) + procedures(before, after)
    if abstract_before is not None and abstract_after is not None:
        out += abstract(abstract_before, abstract_after)
    return out


# ---------------------------------------------------------------- undoing one difference


def _dx_key(text: str | None) -> str | None:
    return normalise(text.split()[0]) if text and text.split() else None


def _px_key(text: str | None) -> tuple[str, str] | None:
    parts = (text or "").split()
    if len(parts) < 2:
        return None
    return parts[0], normalise(parts[1].split("-")[0])


def _px_keys(codes: Codes) -> list[tuple[str, str]]:
    return [(p.system, normalise(p.code)) for p in codes.procedures]


def restore_data(d: Difference, before: Codes, before_abstract: Abstract | None) -> dict[str, Any]:
    """What undoing `d` needs (patient data: seal it with the finding): the coder's line and
    its place in the coder's codes, and which line the reviewer's is; or the field's value."""
    if d.target == "abstract":
        value = (
            before_abstract.model_dump(mode="json").get(d.field or "") if before_abstract else None
        )
        return {"value": value}
    if d.target == "dx":
        dx_codes = [normalise(x.code) for x in before.diagnoses]
        code = _dx_key(d.before)
        index = dx_codes.index(code) if code in dx_codes else None
        line = before.diagnoses[index].model_dump(mode="json") if index is not None else None
        return {"line": line, "index": index, "now": _dx_key(d.after)}
    px_keys = _px_keys(before)
    key = _px_key(d.before)
    index = px_keys.index(key) if key in px_keys else None
    line = before.procedures[index].model_dump(mode="json") if index is not None else None
    now = _px_key(d.after)
    return {"line": line, "index": index, "now": list(now) if now else None}


def _undo(lines: list[Any], keys: list[Any], kind: str, data: dict[str, Any], coder: Any) -> None:
    """Undo one difference on `lines` in place (`keys`: each line's key, kept in step)."""
    now = data.get("now")
    now = tuple(now) if isinstance(now, list) else now
    coder_key = keys_of(coder) if coder is not None else None
    index = data.get("index")
    at_now = keys.index(now) if now is not None and now in keys else None

    def drop(k: Any) -> None:
        if k in keys:
            n = keys.index(k)
            del lines[n], keys[n]

    def put(n: int, line: Any) -> None:
        n = max(0, min(n, len(lines)))
        lines.insert(n, line)
        keys.insert(n, keys_of(line))

    if kind == "added":
        if at_now is not None:
            del lines[at_now], keys[at_now]
        return
    if coder is None:
        return
    if kind in ("revised", "poa_changed", "modifier_units_changed") and at_now is not None:
        lines[at_now], keys[at_now] = coder, coder_key
        return
    if kind == "principal_changed":
        drop(now)
        drop(coder_key)
        put(0, coder)
        return
    if kind == "resequenced":
        if coder_key in keys:
            current = lines[keys.index(coder_key)]
            drop(coder_key)
            put(index or 0, current)
        return
    if coder_key not in keys:  # deleted (or a revised line the reviewer's is gone from)
        put(index if index is not None else len(lines), coder)


def keys_of(line: Any) -> Any:
    """A code line's key: the normalised diagnosis code, or (system, code) for a procedure."""
    if hasattr(line, "system"):
        return (line.system, normalise(line.code))
    return normalise(line.code)


def restore(
    *,
    kind: str,
    target: str,
    field: str | None,
    data: dict[str, Any],
    codes: Codes,
    abstract: Abstract,
) -> tuple[Codes, Abstract]:
    """`codes` and `abstract` with one finding's difference undone: the coder's line back in
    its place (a supervisor overturned the finding), from `restore_data`."""
    if target == "abstract":
        if not field:
            return codes, abstract
        return codes, Abstract.model_validate(
            {**abstract.model_dump(mode="json"), field: data.get("value")}
        )
    if target == "dx":
        dx = list(codes.diagnoses)
        line = DiagnosisLine.model_validate(data["line"]) if data.get("line") else None
        was = [keys_of(x) for x in dx]
        _undo(dx, list(was), kind, data, line)
        # The service lines point at diagnoses by line number: follow each to its new line
        # (a replaced diagnosis is followed by the coder's that replaces it).
        now = data.get("now")
        swapped = {now: keys_of(line)} if line is not None and now is not None else {}
        moved = {k: n for n, k in enumerate((keys_of(x) for x in dx), start=1)}

        def follow(pointers: list[int]) -> list[int]:
            out: list[int] = []
            for p in pointers:
                k = was[p - 1] if 0 < p <= len(was) else None
                n = moved.get(swapped.get(k, k)) if k is not None else None
                if n is not None and n not in out:
                    out.append(n)
            return out

        px = [p.model_copy(update={"dx_pointers": follow(p.dx_pointers)}) for p in codes.procedures]
        return codes.model_copy(update={"diagnoses": dx, "procedures": px}), abstract
    px = list(codes.procedures)
    pline = ProcedureLine.model_validate(data["line"]) if data.get("line") else None
    _undo(px, [keys_of(x) for x in px], kind, data, pline)
    return codes.model_copy(update={"procedures": px}), abstract
