"""`chartdesk audit ...`: verify the chain, seal now, export events."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from server.audit import chain, review
from server.auth.principal import system_principal
from server.db import session_scope
from server.errors import AppError

audit_app = typer.Typer(help="The audit log: verify, seal, export.", no_args_is_help=True)


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        typer.echo(f"error: --{name} is an ISO 8601 time, e.g. 2026-11-01T00:00:00Z", err=True)
        raise typer.Exit(2) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@audit_app.command("verify")
def verify(
    jobs: Annotated[
        int, typer.Option(min=1, help="Processes recomputing the chain (PostgreSQL).")
    ] = min(os.cpu_count() or 1, 8),
) -> None:
    """Seal what is finished, recompute the chain, check checkpoints; exit 1 on a break."""
    try:
        with session_scope() as session:
            report = review.verify_log(
                session, actor=system_principal("cli"), checkpoint=True, jobs=jobs
            )
    except AppError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    if report.ok:
        typer.echo(
            f"audit chain intact: {report.events_checked} events, "
            f"{report.checkpoints_checked} signed checkpoints"
        )
        return
    bad = report.first_bad or {}
    typer.echo(
        f"audit chain BROKEN at seq {bad.get('seq')} (event {bad.get('event_id')}): "
        f"{bad.get('reason')}; {report.events_checked} events verified before it"
    )
    raise typer.Exit(1)


@audit_app.command("seal")
def seal() -> None:
    """Seal finished events now and sign a checkpoint (the app does this by itself)."""
    result = chain.seal_pending(wait=True, checkpoint=True)
    typer.echo(f"sealed {result.sealed} events; chain head at seq {result.head_seq}")
    days = chain.roll_up_activity()
    typer.echo(f"activity: {days} settled days rolled up")


@audit_app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="fhir (NDJSON) or csv")] = "fhir",
    since: Annotated[str | None, typer.Option(help="ISO 8601 time, inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 time, exclusive")] = None,
) -> None:
    """Write FHIR R4 AuditEvent NDJSON or CSV to stdout (the export is itself audited)."""
    try:
        flt = review.check_export(fmt, _when(since, "since"), _when(until, "until"))
        with session_scope() as session:
            review.record_export(session, actor=system_principal("cli"), fmt=fmt, flt=flt)
        for chunk in review.export_lines(fmt, flt):
            sys.stdout.write(chunk)
    except AppError as exc:
        details = "; ".join(str(d.get("msg", d)) for d in exc.details if isinstance(d, dict))
        typer.echo(f"error: {exc.message} {details}".strip(), err=True)
        raise typer.Exit(2) from None
    sys.stdout.flush()
