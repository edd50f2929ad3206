"""`chartdesk import`: FHIR bundles (.json), NDJSON and HL7 v2 (.hl7) files from files and folders.

Each unit (a bundle, one of our JSON encounters, one HL7 message) is its own transaction with
the same rules as the API and the MLLP listener: all of it or nothing, duplicates answered
`duplicate`. An NDJSON line holding a Bundle or one of our encounters is a unit; bare FHIR
resources on NDJSON lines (bulk-data export style) are gathered into one collection bundle
per file. An .hl7 file holds one or many messages, each starting with an MSH segment (MLLP
framing bytes, if the file was captured off the wire, are ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.auth.principal import Principal
from server.db import session_scope
from server.errors import AppError
from server.records import hl7, service
from server.records.schemas import IngestedItem

SUFFIXES = (".json", ".ndjson", ".hl7")
_MLLP_BYTES = str.maketrans("", "", "\x0b\x1c")


@dataclass
class Unit:
    """One thing to ingest in one transaction, and where it came from (file, line)."""

    where: str
    payload: Any = None
    error: str | None = None
    hl7: str | None = None  # one HL7 v2 message


@dataclass
class Summary:
    """What an import did."""

    created: int = 0
    duplicates: int = 0
    updated: int = 0  # HL7: notes added, updates, discharges, cancellations
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)


def collect(paths: list[Path]) -> list[Path]:
    """Every .json, .ndjson and .hl7 file under `paths` (files as given, folders recursively)."""
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
    if path.suffix.lower() == ".hl7":
        yield from _hl7_units(path, text)
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


def _hl7_units(path: Path, text: str) -> Iterator[Unit]:
    """One unit per message of an .hl7 file: each starts at a line beginning with MSH."""
    text = text.translate(_MLLP_BYTES).replace("\r\n", "\n").replace("\r", "\n")
    message: list[str] = []
    start = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if line.startswith("MSH"):
            if message:
                yield Unit(where=f"{path}:{start}", hl7="\r".join(message))
            message, start = [line], number
        elif line.strip():
            if not message:
                yield Unit(where=f"{path}:{number}", error="HL7 text before the first MSH")
                return
            message.append(line)
    if message:
        yield Unit(where=f"{path}:{start}", hl7="\r".join(message))


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
        if unit.hl7 is not None:
            message = hl7.parse(unit.hl7)
            with session_scope() as session:
                items = [service.ingest_hl7(session, actor=actor, message=message)]
            _count(items, summary)
            return
        with session_scope() as session:
            if isinstance(payload, dict) and "resourceType" in payload:
                items = service.ingest_fhir(session, actor=actor, bundle=payload)
            else:
                items = service.ingest_json(session, actor=actor, payload=payload)
    except AppError as exc:
        summary.rejected.append((unit.where, _reason(exc)))
        return
    _count(items, summary)


def _count(items: list[IngestedItem], summary: Summary) -> None:
    for item in items:
        if item.status == "created":
            summary.created += 1
        elif item.status == "duplicate":
            summary.duplicates += 1
        else:
            summary.updated += 1
