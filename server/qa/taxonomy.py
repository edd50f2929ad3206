"""The shipped error taxonomy (`data/error_taxonomy.json`): what each QA finding is filed
under, so that errors can be counted by cause. Read once per process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PATH = Path(__file__).parent / "data" / "error_taxonomy.json"


@dataclass(frozen=True)
class Category:
    """One error category: a stable id (stored on findings) and its label."""

    id: str
    label: str


@dataclass(frozen=True)
class Taxonomy:
    """The categories of one version of the taxonomy file."""

    version: str
    categories: tuple[Category, ...]

    def label(self, category_id: str) -> str:
        """The label of a category id (the id itself if the file no longer lists it)."""
        return next((c.label for c in self.categories if c.id == category_id), category_id)

    def ids(self) -> set[str]:
        """Every category id."""
        return {c.id for c in self.categories}


@lru_cache(maxsize=1)
def taxonomy() -> Taxonomy:
    """The taxonomy shipped with Chartdesk."""
    raw = json.loads(PATH.read_text(encoding="utf-8"))
    return Taxonomy(
        version=str(raw["version"]),
        categories=tuple(Category(id=c["id"], label=c["label"]) for c in raw["categories"]),
    )
