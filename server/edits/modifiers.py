"""CPT and HCPCS Level II modifiers: the table Chartdesk ships (`data/modifiers.tsv`).

The modifier codes are those CMS (HCPCS Level II) and the AMA (CPT Level I) publish; the
short descriptions are our own words. A modifier not in the table is refused (edit
`modifier`): a payer rejects the line.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).parent / "data" / "modifiers.tsv"
SOURCE = "Chartdesk modifier table (CPT Level I and HCPCS Level II modifiers)"


@lru_cache(maxsize=1)
def table() -> dict[str, tuple[str, str]]:
    """modifier -> (level: CPT | HCPCS, short description), read once."""
    found: dict[str, tuple[str, str]] = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("modifier\t"):
            continue
        code, level, description = line.split("\t", 2)
        found[code] = (level, description)
    return found


def describe(modifier: str) -> str | None:
    """The modifier's short description, or None if it is not a modifier."""
    entry = table().get(modifier.strip().upper())
    return entry[1] if entry else None
