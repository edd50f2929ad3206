"""ICD-10-CM tabular instructions, from the notes of the release `simple-icd-10-cm` ships.

- Excludes1 ("NOT CODED HERE"): two codes that are never reported together. A note on a
  category or block applies to every code under it, so a code's notes are its own and its
  ancestors'. Error `excludes1`, unless the coder records that the two conditions are
  unrelated (the guideline's exception): then a warning that says so.
- "Use additional code", "code also" and "code first": reminders (warnings) while none of
  the codes the note names is on the claim (before the line, for "code first").
- 7th characters: a code of a category that takes a 7th character is billable only with it;
  the message lists the category's 7th characters.

Codes named in notes are read from their parentheses: `(E10.-)` is E10 and every code under
it, `(O24.4-)` every code starting O24.4, `(O10-O11, O13-O16)` ranges of categories.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from server.coding import codesets
from server.coding.codesets import normalise

SOURCE = f"ICD-10-CM tabular list, {codesets.ICD10CM_RELEASE}"
_PARENS = re.compile(r"\(([^()]*)\)")
_REF = re.compile(r"^([A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?)(\.?-)?$")
_RANGE = re.compile(
    r"^([A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?)\.?-?-([A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?)"
)


@dataclass(frozen=True)
class Ref:
    """Codes a note names: a prefix (one code, or a category with everything under it), or a
    range of codes compared on the length of its bounds."""

    low: str
    high: str

    def matches(self, code: str) -> bool:
        """Whether `code` (normalised) is one of the codes named."""
        return self.low <= code[: len(self.low)] and code[: len(self.high)] <= self.high


def refs(note: str) -> list[Ref]:
    """The codes a tabular note names in its parentheses."""
    found: list[Ref] = []
    for group in _PARENS.findall(note):
        for part in group.split(","):
            item = part.strip().upper()
            m = _RANGE.match(item)
            if m and not _REF.match(item):
                found.append(Ref(normalise(m.group(1)), normalise(m.group(2))))
                continue
            m = _REF.match(item)
            if m:
                code = normalise(m.group(1))
                found.append(Ref(code, code))
    return found


@dataclass(frozen=True)
class Notes:
    """The instructional notes that apply to one code (its own and its ancestors')."""

    excludes1: tuple[tuple[str, tuple[Ref, ...]], ...]  # (note, codes it names)
    use_additional: tuple[tuple[str, tuple[Ref, ...]], ...]
    code_also: tuple[tuple[str, tuple[Ref, ...]], ...]
    code_first: tuple[tuple[str, tuple[Ref, ...]], ...]
    seventh: dict[str, str]  # 7th character -> its meaning, if the category takes one


def _lines(note: str | list[str]) -> list[str]:
    if isinstance(note, list):
        return [n for n in note if n]
    return [note] if note else []


@lru_cache(maxsize=20000)
def notes(display: str) -> Notes:
    """The notes that apply to an ICD-10-CM code (dotted form), cached per code."""
    import simple_icd_10_cm as cm

    chain = [display, *cm.get_ancestors(display)]
    chain = [c for c in chain if not cm.is_chapter(c)]
    ex1: list[tuple[str, tuple[Ref, ...]]] = []
    add: list[tuple[str, tuple[Ref, ...]]] = []
    also: list[tuple[str, tuple[Ref, ...]]] = []
    first: list[tuple[str, tuple[Ref, ...]]] = []
    seventh: dict[str, str] = {}
    for code in chain:
        ex1 += [(n, tuple(refs(n))) for n in _lines(cm.get_excludes1(code))]
        add += [(n, tuple(refs(n))) for n in _lines(cm.get_use_additional_code(code))]
        also += [(n, tuple(refs(n))) for n in _lines(cm.get_code_also(code))]
        first += [(n, tuple(refs(n))) for n in _lines(cm.get_code_first(code))]
        if not seventh:
            seventh = dict(cm.get_seven_chr_def(code) or {})
    return Notes(tuple(ex1), tuple(add), tuple(also), tuple(first), seventh)


def seventh_characters(code: str) -> dict[str, str]:
    """The 7th characters a code's category takes ({} if none), for a code in the index."""
    entry = codesets.icd10cm().get(code)
    return notes(entry.display).seventh if entry else {}


def _short(note: str, limit: int = 160) -> str:
    text = " ".join(note.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class TabularFinding:
    """A tabular instruction that applies to the diagnosis list."""

    edit: str  # excludes1 | use-additional-code | code-also | code-first
    line: int  # the diagnosis line it is about
    msg: str
    pair: tuple[str, str] | None = None  # excludes1: the two codes, sorted


def check(dx: list[str], *, unrelated: set[tuple[str, str]]) -> list[TabularFinding]:
    """Excludes1 pairs and note reminders over the diagnosis codes (dotted, in claim order).

    `unrelated`: pairs (sorted dotted codes) the coder recorded as unrelated conditions.
    """
    index = codesets.icd10cm()
    entries = [index.get(c) for c in dx]
    codes = [normalise(c) for c in dx]
    by_prefix: dict[str, list[int]] = {}  # every prefix of every code -> its lines
    for m, code in enumerate(codes):
        for k in range(3, len(code) + 1):
            by_prefix.setdefault(code[:k], []).append(m)

    def lines_named(named: tuple[Ref, ...]) -> set[int]:
        hit: set[int] = set()
        for r in named:
            if r.low == r.high:
                hit.update(by_prefix.get(r.low, ()))
            else:
                hit.update(m for m, c in enumerate(codes) if r.matches(c))
        return hit

    found: list[TabularFinding] = []
    seen_pairs: set[tuple[str, str]] = set()
    for n, entry in enumerate(entries):
        if entry is None or not entry.billable:
            continue
        applied = notes(entry.display)
        for note, named in applied.excludes1:
            for m in sorted(lines_named(named)):
                other = entries[m]
                if m == n or other is None:
                    continue
                a, b = sorted((entry.display, other.display))
                if (a, b) in seen_pairs:
                    continue
                seen_pairs.add((a, b))
                where = max(n, m)
                if (a, b) in unrelated:
                    msg = (
                        f"{other.display} and {entry.display} are an Excludes1 pair "
                        f"({entry.display}: 'Excludes1: {_short(note)}'); reported together "
                        f"because the coder recorded the conditions as unrelated. {SOURCE}."
                    )
                    found.append(TabularFinding("excludes1-unrelated", where, msg, (a, b)))
                    continue
                msg = (
                    f"{other.display} ({other.description}) is not coded with "
                    f"{entry.display} ({entry.description}): Excludes1 note "
                    f"'{_short(note)}'. Keep the one the documentation supports, or, if the "
                    f"two conditions are unrelated, record that. {SOURCE}."
                )
                found.append(TabularFinding("excludes1", where, msg, (a, b)))
        for edit, kind, items, before_only in (
            ("use-additional-code", "use additional code", applied.use_additional, False),
            ("code-also", "code also", applied.code_also, False),
            ("code-first", "code first", applied.code_first, True),
        ):
            for note, named in items:
                if not named:
                    continue
                hits = lines_named(named) - {n}
                if any(m < n for m in hits) if before_only else hits:
                    continue
                found.append(
                    TabularFinding(
                        edit,
                        n,
                        f"{entry.display} has a '{kind}' note (\"{_short(note)}\"): "
                        + (
                            "sequence the underlying condition first if it is documented. "
                            if before_only
                            else "add the code if the documentation supports it. "
                        )
                        + f"{SOURCE}.",
                    )
                )
    return found
