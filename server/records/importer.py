"""`chartdesk import`: FHIR bundles (.json) and NDJSON files from files and folders.

Each unit (a bundle, or one of our JSON encounters) is its own transaction with the same rules
as the API: all of it or nothing, duplicates answered `duplicate`. An NDJSON line holding a
Bundle or one of our encounters is a unit; bare FHIR resources on NDJSON lines (bulk-data
export style) are gathered into one collection bundle per file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.auth.principal import Principal
from server.db import session_scope
from server.errors import AppError
from server.records import service

SUFFIXES = (".json", ".ndjson")


@dataclass
class Unit:
    """One thing to ingest in one transaction, and where it came from (file, line)."""

    where: str
    payload: Any = None
    error: str | None = None


@dataclass
class Summary:
    """What an import did."""

    created: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)


def collect(paths: list[Path]) -> list[Path]:
    """Every .json and .ndjson file under `paths` (files as given, folders recursively)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES))
        else:
            found.append(path)
    return found


def _json_problem(exc: AppError) -> str:
    return "not valid JSON" if exc.code == "invalid_json" else exc.message


def _units_of(path: Path) -> Iterator[Unit]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        yield Unit(where=str(path), error=f"cannot read the file ({type(exc).__name__})")
        return
    if path.suffix.lower() != ".ndjson":
        try:
            yield Unit(where=str(path), payload=service.parse_json(text))
        except AppError as exc:
            yield Unit(where=str(path), error=_json_problem(exc))
        return
    loose: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            value = service.parse_json(line)
        except AppError as exc:
            yield Unit(where=where, error=_json_problem(exc))
            continue
        kind = value.get("resourceType") if isinstance(value, dict) else None
        if kind is None or kind == "Bundle":
            yield Unit(where=where, payload=value)
        else:
            loose.append({"resource": value})
    if loose:
        yield Unit(
            where=f"{path} (resources)",
            payload={"resourceType": "Bundle", "type": "collection", "entry": loose},
        )


def units(paths: list[Path]) -> list[Unit]:
    """Every unit of every file, in order."""
    return [unit for path in collect(paths) for unit in _units_of(path)]


def _reason(exc: AppError) -> str:
    if not exc.details:
        return exc.message
    shown = "; ".join(
        f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}"
        for d in exc.details[:5]
        if isinstance(d, dict)
    )
    more = f" (+{len(exc.details) - 5} more)" if len(exc.details) > 5 else ""
    return f"{exc.message} {shown}{more}"


def ingest_unit(unit: Unit, *, actor: Principal, summary: Summary) -> None:
    """Ingest one unit in its own transaction and count the outcome."""
    if unit.error is not None:
        summary.rejected.append((unit.where, unit.error))
        return
    payload = unit.payload
    try:
        with session_scope() as session:
            if isinstance(payload, dict) and "resourceType" in payload:
                items = service.ingest_fhir(session, actor=actor, bundle=payload)
            else:
                items = service.ingest_json(session, actor=actor, payload=payload)
    except AppError as exc:
        summary.rejected.append((unit.where, _reason(exc)))
        return
    for item in items:
        if item.status == "created":
            summary.created += 1
        else:
            summary.duplicates += 1
