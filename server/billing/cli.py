"""`chartdesk billing remit FILE...`: post X12 835 remittances from the shell (API rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

billing_app = typer.Typer(help="Billing: post payers' 835 remittances.", no_args_is_help=True)
err = Console(stderr=True)


@billing_app.command("remit")
def remit(
    files: Annotated[list[Path], typer.Argument(help="X12 835 files (005010X221A1)")],
) -> None:
    """Post each 835 in its own transaction; a malformed one stores nothing (exit 1)."""
    from server.auth.principal import system_principal
    from server.billing import remittance
    from server.db import session_scope
    from server.errors import AppError

    failed = 0
    for path in files:
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            err.print(f"[red]error:[/red] {path}: cannot read an ASCII 835 ({type(exc).__name__})")
            failed += 1
            continue
        try:
            with session_scope() as session:
                results = remittance.post(
                    session, actor=system_principal("cli:billing-remit"), text=text
                )
                lines = [r.message for r in results]
                claims = [c for r in results for c in r.claims]
        except AppError as exc:
            err.print(f"[red]error:[/red] {path}: {exc.message}")
            failed += 1
            continue
        for line in lines:
            typer.echo(f"{path}: {line}")
        for c in claims:
            typer.echo(f"  {c.claim_number}\t{c.status}\tpaid {c.paid:.2f}")
    if failed:
        raise typer.Exit(1)
