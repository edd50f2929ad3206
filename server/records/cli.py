"""Shell commands of the records domain: `import`, `keys rotate`, `records purge`.

Registered on the `chartdesk` app by server/cli.py. Every command works through the records
service in short transactions and audits as a system actor (ids only).
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from server.errors import AppError

records_app = typer.Typer(help="Manage encounter records.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def import_paths(
    paths: Annotated[list[Path], typer.Argument(help="Files (.json, .ndjson, .hl7) and folders.")],
) -> None:
    """Ingest FHIR bundles (.json), NDJSON or HL7 v2 (.hl7) files, same rules as the API."""
    from server.auth.principal import system_principal
    from server.records import importer

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        _fail(f"no such file or folder: {', '.join(missing)}")
    units = importer.units(paths)
    if not units:
        _fail("no .json, .ndjson or .hl7 files found")
    summary = importer.Summary()
    actor = system_principal("cli:import")
    with _progress() as progress:
        task = progress.add_task("importing", total=len(units))
        for unit in units:
            importer.ingest_unit(unit, actor=actor, summary=summary)
            progress.advance(task)
    out.print(
        f"created {summary.created}, duplicates {summary.duplicates}, "
        f"rejected {len(summary.rejected)}"
        + (f", updated {summary.updated}" if summary.updated else "")
    )
    for where, reason in summary.rejected:
        out.print(f"  rejected {where}: {reason}", markup=False, highlight=False)
    if summary.rejected:
        raise typer.Exit(1)


def keys_rotate(
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Finish an interrupted rotation; adds no new key."),
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Keys per transaction.")] = 500,
) -> None:
    """Add a new primary key-encryption key and re-wrap every data key under it (resumable)."""
    from server.audit import service as audit_service
    from server.auth.principal import system_principal
    from server.db import session_scope
    from server.keyring import add_kek, load_keyring
    from server.records import keys

    actor = system_principal("cli:keys-rotate")
    try:
        if not resume:
            kek_id = add_kek()
            out.print(f"new primary key-encryption key {kek_id}")
        keyring = load_keyring()
        with session_scope() as session:
            total = keys.pending_rewrap(session, keyring=keyring)
        done = 0
        with _progress() as progress:
            task = progress.add_task("re-wrapping data keys", total=total)
            while True:
                with session_scope() as session:
                    count = keys.rewrap_batch(session, limit=batch_size, keyring=keyring)
                if count == 0:
                    break
                done += count
                progress.update(task, completed=min(done, total))
        with session_scope() as session:
            audit_service.record(
                session,
                actor=actor,
                action=audit_service.Action.key_rotate,
                purpose=None,
                detail=f"primary={keyring.primary_wrapping_id} rewrapped={done}",
            )
    except AppError as exc:
        _fail(exc.message)
    out.print(f"re-wrapped {done} data keys under {keyring.primary_wrapping_id}")


def _day(value: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(value), time.min, tzinfo=UTC)
    except ValueError:
        raise typer.BadParameter("use YYYY-MM-DD") from None


@records_app.command("purge")
def records_purge(
    billed_before: Annotated[
        str, typer.Option("--billed-before", help="Purge encounters billed before this date.")
    ],
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask for confirmation (asked only on a terminal).")
    ] = False,
) -> None:
    """Crypto-shred billed encounters: destroy their data keys (metadata and audit log stay)."""
    from server.auth.principal import system_principal
    from server.db import session_scope
    from server.records import keys

    before = _day(billed_before)
    if not yes and sys.stdin.isatty():
        typer.confirm(
            f"Destroy the data keys of every encounter billed before {before.date()}? "
            "This cannot be undone.",
            abort=True,
        )
    try:
        with session_scope() as session:
            purged = keys.purge_billed_before(
                session, actor=system_principal("cli:records-purge"), before=before
            )
    except AppError as exc:
        _fail(exc.message)
    out.print(f"purged {len(purged)} encounters (data keys destroyed)")
