"""Helpers for the records tests: fixture facts, row counts, database dumps."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, SQLModel

from server.db import get_engine

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "synthea"
if not FIXTURES.is_dir():  # the repo checked out elsewhere: the path the brief names
    FIXTURES = Path("/work/shared/fixtures/synthea")
FHIR = {"Content-Type": "application/fhir+json"}


def fixture_files() -> list[Path]:
    """Every Synthea bundle in the shared fixtures."""
    return sorted(FIXTURES.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    """A fixture bundle as JSON."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@dataclass
class Facts:
    """What a fixture holds that must never appear in clear at rest."""

    encounters: int = 0
    names: list[str] = field(default_factory=list)  # each given and family name
    full_names: list[str] = field(default_factory=list)  # "given... family"
    ssns: list[str] = field(default_factory=list)
    mrns: list[str] = field(default_factory=list)
    birth_dates: list[str] = field(default_factory=list)
    service_dates: set[str] = field(default_factory=set)
    # words of the practitioners' names (public directory data, stored in clear for queries)
    practitioner_words: set[str] = field(default_factory=set)
    # external id -> set of note texts for that encounter
    notes: dict[str, set[str]] = field(default_factory=dict)

    def sentences(self) -> list[str]:
        """One distinctive line of every note."""
        out = []
        for texts in self.notes.values():
            for text in texts:
                lines = [ln.strip() for ln in text.splitlines() if len(ln.strip()) > 30]
                out.append(max(lines, key=len) if lines else text.strip())
        return out


def facts(bundle: dict[str, Any]) -> Facts:
    """The secrets and the counts of a bundle, read straight from its JSON."""
    f = Facts()
    urls: dict[str, str] = {}
    for entry in bundle["entry"]:
        res = entry["resource"]
        kind = res["resourceType"]
        if kind == "Patient":
            for name in res.get("name", []):
                f.names.extend(name.get("given", []))
                f.names.append(name["family"])
                f.full_names.append(" ".join([*name.get("given", []), name["family"]]))
            for ident in res.get("identifier", []):
                code = ident.get("type", {}).get("coding", [{}])[0].get("code")
                if code == "SS":
                    f.ssns.append(ident["value"])
                if code == "MR":
                    f.mrns.append(ident["value"])
            f.birth_dates.append(res["birthDate"])
        elif kind == "Encounter":
            f.encounters += 1
            urls[entry["fullUrl"]] = res.get("identifier", [{}])[0].get("value") or res["id"]
            f.service_dates.add(res["period"]["start"][:10])
            f.service_dates.add(res["period"]["end"][:10])
            for who in res.get("participant", []):
                f.practitioner_words.update(
                    (who.get("individual") or {}).get("display", "").split()
                )
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "DocumentReference":
            ext = urls[res["context"]["encounter"][0]["reference"]]
            text = base64.b64decode(res["content"][0]["attachment"]["data"]).decode()
            f.notes.setdefault(ext, set()).add(text)
        elif res["resourceType"] == "DiagnosticReport" and res.get("presentedForm"):
            ext = urls[res["encounter"]["reference"]]
            text = base64.b64decode(res["presentedForm"][0]["data"]).decode()
            f.notes.setdefault(ext, set()).add(text)
    return f


def row_counts() -> dict[str, int]:
    """Rows in every table."""
    with Session(get_engine()) as s:
        return {
            t.name: int(s.execute(select(func.count()).select_from(t)).scalar_one())
            for t in SQLModel.metadata.sorted_tables
        }


def dump_database(db_url: str, pg_cluster: Any) -> bytes:
    """The whole database as bytes: pg_dump on PostgreSQL; file bytes and iterdump on SQLite."""
    get_engine().dispose()
    if db_url.startswith("sqlite"):
        path = Path(db_url.removeprefix("sqlite:///"))
        raw = path.read_bytes()
        for extra in (Path(f"{path}-wal"), Path(f"{path}-journal")):
            if extra.exists():
                raw += extra.read_bytes()
        conn = sqlite3.connect(path)
        try:
            text = "\n".join(conn.iterdump())
        finally:
            conn.close()
        return raw + text.encode()
    name = db_url.rsplit("/", 1)[1]
    result = subprocess.run(  # noqa: S603 - our own cluster's pg_dump
        [
            str(pg_cluster.bindir / "pg_dump"),
            "-h",
            "127.0.0.1",
            "-p",
            str(pg_cluster.port),
            "-U",
            "postgres",
            "--no-owner",
            name,
        ],
        check=True,
        capture_output=True,
    )
    assert len(result.stdout) > 10_000
    return result.stdout
