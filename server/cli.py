"""The `chartdesk` command: serve, migrate, demo and administration from the shell."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from server.audit.cli import audit_app
from server.config import get_settings
from server.errors import AppError

app = typer.Typer(help="Chartdesk: the work queue for remote medical coding.", no_args_is_help=True)
user_app = typer.Typer(help="Manage people.", no_args_is_help=True)
token_app = typer.Typer(help="Manage service tokens.", no_args_is_help=True)
queue_app = typer.Typer(help="Manage queues.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage the keyring.", no_args_is_help=True)
queries_app = typer.Typer(help="Physician queries.", no_args_is_help=True)
codesets_app = typer.Typer(
    help="Load code set files (CPT, HCPCS, PCS), CMS edit files (NCCI PTP, MUE) and the "
    "chargemaster (cdm).",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(queue_app, name="queue")

# Records domain commands: `import`, `keys rotate`, `records purge`.
from server.records import cli as records_cli  # noqa: E402

app.command("import")(records_cli.import_paths)
keys_app.command("rotate")(records_cli.keys_rotate)
app.add_typer(records_cli.records_app, name="records")
app.add_typer(codesets_app, name="codesets")
app.add_typer(queries_app, name="queries")

# Interfaces: `hl7 listen`, the MLLP listener (its own process beside `serve`).
from server.interfaces.cli import hl7_app  # noqa: E402

app.add_typer(hl7_app, name="hl7")

# Billing: `billing remit`, X12 835 remittances in.
from server.billing.cli import billing_app  # noqa: E402

app.add_typer(billing_app, name="billing")

reports_app = typer.Typer(help="The dashboards' per-day summaries.", no_args_is_help=True)
app.add_typer(reports_app, name="reports")


@reports_app.command("rebuild")
def reports_rebuild() -> None:
    """Count the per-day summaries again in CHARTDESK_AUDIT_TIMEZONE (run after changing it).

    Productivity and throughput read whole days from `coding_day` and the compliance activity
    figure settled days from `audit_day`; both are counted in the hospital's zone, so after a
    change of zone their days are the old zone's until rebuilt. One transaction: the reports
    never see them half built.
    """
    from sqlalchemy import delete

    from server.audit import activity
    from server.db import session_scope
    from server.models import AuditDay
    from server.reports import summary

    with session_scope() as session:
        rows = summary.rebuild_coding_days(session.connection())
        session.execute(delete(AuditDay))
        days = activity.roll_up(session)
    typer.echo(
        f"coding_day: {rows} rows in {get_settings().audit_timezone}; "
        f"activity: {days} settled days rolled up"
    )


err = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    """Print a plain error and exit."""
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _serve(host: str, port: int, workers: int) -> None:
    from server.db import get_engine
    from server.migrate import check_current
    from server.web.protocol import NoDelayHttpToolsProtocol

    try:
        check_current(get_engine())
    except AppError as exc:
        fail(exc.message)
    if os.geteuid() == 0 and get_settings().production:
        err.print(
            "[yellow]warning:[/yellow] running as root; use an unprivileged user in production"
        )
    uvicorn.run(
        "server.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # X-Forwarded-For is believed only from CHARTDESK_TRUSTED_PROXIES (default none):
        # the audit log's source address and the per-address sign-in limit rest on it.
        proxy_headers=bool(get_settings().trusted_proxies),
        forwarded_allow_ips=get_settings().trusted_proxies or [],
        log_level="info",
        # uvicorn's access log prints every path with its query string, and some carry
        # patient data (an MRN in /api/v1/audit/events?patient=, typed codes in searches).
        # The app logs each request itself: route template, status, request id only.
        access_log=False,
        server_header=False,
        # httptools (C parser) with TCP_NODELAY on each connection: see server/web/protocol.py.
        http=NoDelayHttpToolsProtocol,
        # A worker that does not answer the supervisor's ping in time is killed and replaced;
        # uvicorn's 5 s default kills workers still starting up on a busy host, over and over.
        timeout_worker_healthcheck=30,
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the app against the configured database."""
    _serve(host, port, workers)


@app.command()
def migrate() -> None:
    """Bring the configured database to the newest migration (alembic upgrade head)."""
    from server.migrate import upgrade

    upgrade()
    typer.echo("database is at the newest migration")


@user_app.command("create")
def user_create(
    username: str,
    role: Annotated[
        list[str],
        typer.Option("--role", help="coder, supervisor, biller, compliance, admin, provider"),
    ],
    queue: Annotated[
        list[str] | None, typer.Option("--queue", help="Queue the user may pull from.")
    ] = None,
    npi: Annotated[
        str | None,
        typer.Option("--npi", help="A provider's NPI: links them to that practitioner's queries."),
    ] = None,
    email: Annotated[
        str | None,
        typer.Option("--email", help="A provider's address for query reminders (a link only)."),
    ] = None,
) -> None:
    """Create a local user. Password from stdin, or generated and printed."""
    from server.auth import service as auth_service
    from server.db import session_scope

    password = None if sys.stdin.isatty() else sys.stdin.readline().strip() or None
    try:
        with session_scope() as session:
            created = auth_service.create_user(
                session,
                username=username,
                roles=role,
                password=password,
                queues=queue or [],
                npi=npi,
                email=email,
            )
    except AppError as exc:
        fail(exc.message)
    if password is None:
        typer.echo(f"password: {created.password}")
    typer.echo(f"created {created.user.username} with roles {', '.join(sorted(set(role)))}")
    _qr_to_terminal(created.totp_uri)
    typer.echo(created.totp_uri)


@user_app.command("reset-totp")
def user_reset_totp(username: str) -> None:
    """Give a user a new TOTP secret and print its otpauth:// URI."""
    from server.auth import service as auth_service
    from server.db import session_scope

    try:
        with session_scope() as session:
            user = auth_service.get_user_by_name(session, username=username)
            assert user.id is not None  # noqa: S101
            uri = auth_service.reset_totp(session, actor=None, user_id=user.id)
    except AppError as exc:
        fail(exc.message)
    _qr_to_terminal(uri)
    typer.echo(uri)


def _qr_to_terminal(uri: str) -> None:
    """The authenticator QR code on stderr when a person is at the terminal (stdout keeps
    the contract: the otpauth:// URI on its own line)."""
    if sys.stderr.isatty():
        from server.auth.passwords import totp_qr_terminal

        typer.echo(totp_qr_terminal(uri), err=True)


@token_app.command("create")
def token_create(
    name: str,
    scope: Annotated[list[str], typer.Option("--scope", help="ingest, billing, audit")],
) -> None:
    """Create a service token; it is printed once, alone on the last line."""
    from server.auth import service as auth_service
    from server.auth.principal import system_principal
    from server.db import session_scope

    try:
        with session_scope() as session:
            token, plaintext = auth_service.create_token(
                session, name=name, scopes=scope, actor=system_principal("cli:token-create")
            )
            scopes = token.scopes
    except AppError as exc:
        fail(exc.message)
    typer.echo(f"token {name} with scopes {scopes}; store it now, it is not shown again:")
    typer.echo(plaintext)


@token_app.command("revoke")
def token_revoke(name: str) -> None:
    """Revoke a service token."""
    from server.auth import service as auth_service
    from server.auth.principal import system_principal
    from server.db import session_scope

    try:
        with session_scope() as session:
            auth_service.revoke_token(
                session, name=name, actor=system_principal("cli:token-revoke")
            )
    except AppError as exc:
        fail(exc.message)
    typer.echo(f"revoked {name}")


@queue_app.command("create")
def queue_create(name: str, description: str = "") -> None:
    """Create a queue."""
    from server.db import session_scope
    from server.queue import service as queue_service

    try:
        with session_scope() as session:
            queue_service.create_queue(session, name=name, description=description)
    except AppError as exc:
        fail(exc.message)
    typer.echo(f"created queue {name}")


@queue_app.command("add-member")
def queue_add_member(name: str, username: str) -> None:
    """Let a user pull work from a queue."""
    from server.db import session_scope
    from server.queue import service as queue_service

    try:
        with session_scope() as session:
            queue_service.add_member(session, queue_name=name, username=username)
    except AppError as exc:
        fail(exc.message)
    typer.echo(f"{username} may now pull from {name}")


@queue_app.command("sweep")
def queue_sweep() -> None:
    """Return expired leases to their queues (safe to run beside the app, from cron)."""
    from server.db import session_scope
    from server.queue import service as queue_service

    total = 0
    while True:
        with session_scope() as session:
            returned = queue_service.sweep_expired(session)
        total += len(returned)
        if len(returned) < queue_service.SWEEP_BATCH:
            break
    typer.echo(f"returned {total} expired leases")


EDIT_FILES = ("ncci-ptp", "mue")


@codesets_app.command("load")
def codesets_load(
    system: Annotated[str, typer.Argument(help="cpt, hcpcs, pcs, ncci-ptp, mue or cdm")],
    file: Annotated[Path, typer.Argument(help="The code or edit file (CSV/TSV, or the CMS file)")],
    setting: Annotated[
        str | None,
        typer.Option(help="ncci-ptp: practitioner|hospital; mue: practitioner|hospital|dme"),
    ] = None,
    quarter: Annotated[
        str | None, typer.Option(help="Label of the edits' quarter (default: from the file name)")
    ] = None,
    effective: Annotated[
        str | None,
        typer.Option(help="MUE: the table's effective date YYYY-MM-DD (default: file name)"),
    ] = None,
) -> None:
    """Load a code set (replaces it) or a CMS claim-edit file (merged, effective-dated)."""
    from server.db import session_scope

    if not file.is_file():
        fail(f"no such file: {file}")
    kind = system.lower()
    if kind == "cdm":
        if setting is not None or quarter is not None or effective is not None:
            fail("cdm takes no options: each line carries its own effective date")
        _load_cdm(file)
        return
    if kind in EDIT_FILES:
        _load_edits(kind, file, setting=setting, quarter=quarter, effective=effective)
        return
    if setting is not None:
        fail("--setting is for ncci-ptp and mue files only")
    from server.coding import codesets

    try:
        with session_scope() as session:
            count = codesets.load(session, system=system.upper(), path=file)
    except AppError as exc:
        details = "; ".join(str(d.get("msg", d)) for d in exc.details[:5] if isinstance(d, dict))
        fail(f"{exc.message} {details}".strip())
    typer.echo(f"loaded {count} {system.upper()} codes")


@queries_app.command("escalate")
def queries_escalate() -> None:
    """Escalate open queries past CHARTDESK_QUERY_ESCALATION_BUSINESS_DAYS (run from cron)."""
    from server.db import session_scope
    from server.queries import mail
    from server.queries import service as queries_service

    with session_scope() as session:
        escalated = queries_service.escalate_overdue(session)
        reminders = mail.reminders(session, query_ids=escalated)
    sent = mail.send(reminders)  # after the commit: a mail server down never undoes it
    typer.echo(f"escalated {len(escalated)} open queries; sent {sent} reminder(s)")


def _load_cdm(file: Path) -> None:
    """`codesets load cdm FILE`: the chargemaster, one transaction, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from server.billing import cdm
    from server.db import session_scope

    bar = Progress(
        TextColumn("loading chargemaster"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
    )
    try:
        with bar, session_scope() as session:
            task = bar.add_task("lines", total=None)
            result = cdm.load(
                session,
                path=file,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except AppError as exc:
        fail(f"{file.name}: {exc.message}")
        return
    if result.already_loaded:
        typer.echo(f"{file.name} was already loaded ({result.rows} chargemaster lines)")
    else:
        typer.echo(
            f"loaded {result.rows} chargemaster lines ({result.added} new, newest effective "
            f"{result.newest})"
        )


def _load_edits(
    kind: str, file: Path, *, setting: str | None, quarter: str | None, effective: str | None
) -> None:
    """`codesets load ncci-ptp|mue FILE --setting S`: one transaction, with a progress bar."""
    from datetime import date

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from server.db import session_scope
    from server.edits import files

    if setting is None:
        fail(f"{kind} needs --setting ({'|'.join(files.KINDS[kind])})")
        return
    day = None
    if effective is not None:
        try:
            day = date.fromisoformat(effective)
        except ValueError:
            fail(f"--effective {effective!r} is not a date YYYY-MM-DD")
    bar = Progress(
        TextColumn(f"loading {kind} {setting}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
    )
    try:
        with bar, session_scope() as session:
            task = bar.add_task("lines", total=None)
            result = files.load_any(
                session,
                kind=kind,
                setting=setting,
                path=file,
                quarter=quarter,
                effective=day,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except AppError as exc:
        fail(f"{file.name}: {exc.message}")
        return
    if result.already_loaded:
        typer.echo(f"{file.name} was already loaded ({result.rows} {kind} edits, {result.quarter})")
    else:
        typer.echo(f"loaded {result.rows} {kind} {setting} edits ({result.quarter})")


@keys_app.command("init")
def keys_init() -> None:
    """Create a new keyring at CHARTDESK_KEYRING_FILE (mode 0600); refuses to overwrite."""
    from server.keyring import init_keyring

    try:
        path = init_keyring(demo=not get_settings().production)
    except AppError as exc:
        fail(exc.message)
    typer.echo(f"created keyring {path}; back it up with the database, never beside it in clear")


DEMO_ROLES = ["coder", "supervisor", "biller", "compliance", "admin", "provider"]


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    host: Annotated[str, typer.Option(help="Address (loopback by default).")] = "127.0.0.1",
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Prepare only.")] = False,
) -> None:
    """The embedded default: SQLite + dev keyring under ./var, demo users and charts, then serve."""
    var = Path("var")
    var.mkdir(exist_ok=True)
    os.environ.setdefault("CHARTDESK_ENV", "development")
    os.environ.setdefault("CHARTDESK_DATABASE_URL", f"sqlite:///{var / 'chartdesk.db'}")
    os.environ.setdefault("CHARTDESK_KEYRING_FILE", str(var / "keyring.json"))
    # Before the settings are first read: the sign-in page shows these accounts' codes.
    os.environ.setdefault("CHARTDESK_DEMO_FILE", str(var / "demo-users.json"))
    get_settings.cache_clear()
    from server import demo as demo_setup

    prepared = demo_setup.prepare(DEMO_ROLES)
    typer.echo(f"\nLoaded {prepared.charts.describe()}.")
    if prepared.chargemaster:
        typer.echo(f"Loaded the demo chargemaster: {prepared.chargemaster} priced charge lines.")
    for where, reason in prepared.charts.rejected:
        typer.echo(f"  rejected {where}: {reason}")
    typer.echo("\nDemo accounts (the sign-in page shows their current codes in development mode):")
    for name, password, uri in prepared.logins:
        typer.echo(f"  {name:<16} password {password:<24} {uri}")
    typer.echo(f"\nChartdesk demo on http://{host}:{port}/  (Ctrl-C to stop)")
    if not no_serve:
        _serve(host, port, 1)


if __name__ == "__main__":
    app()
