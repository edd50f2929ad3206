"""`chartdesk hl7 listen`: the MLLP listener as its own process beside `chartdesk serve`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import typer
from rich.console import Console

hl7_app = typer.Typer(help="HL7 v2 interfaces (MLLP).", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True)

# Threads doing database work for the listener's connections (each its own transaction).
DB_THREADS = 8


async def _listen(host: str, port: int, metrics_port: int | None) -> None:
    from server.interfaces import mllp

    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="hl7"))
    context = mllp.tls_context()
    mllp.check_exposure(host, context)
    server = await mllp.start(host, port, context=context)
    servers = [server]
    out.print(f"HL7 MLLP listener on {host}:{port} ({'TLS' if context else 'plain TCP'})")
    if metrics_port is not None:
        servers.append(await mllp.start_metrics(host, metrics_port))
        out.print(f"metrics on http://{host}:{metrics_port}/metrics")
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()
    for s in servers:
        await s.wait_closed()


@hl7_app.command("listen")
def listen(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="MLLP port.")] = 2575,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve this listener's Prometheus metrics on this port.")
    ] = None,
) -> None:
    """Take HL7 v2 ADT/MDM/ORU over MLLP, answering each message with an ACK."""
    from server.db import get_engine
    from server.errors import AppError
    from server.migrate import check_current

    try:
        check_current(get_engine())
    except AppError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    try:
        asyncio.run(_listen(host, port, metrics_port))
    except (OSError, ValueError) as exc:
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
