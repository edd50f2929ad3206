"""create_app(): routers, middleware, error handlers."""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig

from server import __version__
from server.audit import router as audit_router
from server.audit.chain import BackgroundSealer
from server.auth import oidc_router
from server.auth import router as auth_router
from server.billing import router as billing_router
from server.coding import codesets
from server.coding import router as coding_router
from server.config import PROJECT_ROOT, get_settings
from server.db import get_engine
from server.edits import router as edits_router
from server.keyring import load_keyring
from server.migrate import check_current
from server.qa import router as qa_router
from server.qa import sampling_router
from server.queries import router as queries_router
from server.queue import router as queue_router
from server.records import router as records_router
from server.reports import router as reports_router
from server.web import router as web_router
from server.web.guards import refuse_nul
from server.web.handlers import install_handlers
from server.web.middleware import SecurityMiddleware
from server.web.routing import skip_unrelated_paths
from server.workbench import router as workbench_router

STATIC_DIR = PROJECT_ROOT / "server" / "static"


def _telemetry() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry hook: on only when the environment configures OTel.

    Left on, it asks OpenTelemetry on every request whether a provider was set up, which
    looks in os.environ each time: 12% of Next's Python time with nothing configured
    (issue 23). Decided once here instead: `OTEL_*` or `FASTAPI_OTEL_*` variables turn it on.
    """
    wanted = any(name.startswith(("OTEL_", "FASTAPI_OTEL_")) for name in os.environ)
    return {"tracing": wanted, "metrics": wanted, "logs": wanted}


def warm_start() -> None:
    """Build the ICD-10-CM search index, then take what start-up built out of the cyclic
    garbage collector's full passes (`gc.freeze`).

    A worker holds about 900,000 long-lived objects, most of them the index, and every full
    collection walked them all with the GIL held: 45 to 330 ms during which every request of
    the process waited, the latency tail of issue 23. Frozen objects are still freed by
    reference counting; only cycles among them would stay, and start-up's garbage is
    collected first. Run once per process, in the start-up thread.
    """
    gc.disable()  # while the index is built: its objects are all kept, so no pass would free any
    try:
        codesets.icd10cm()
    finally:
        gc.enable()
    gc.collect()
    gc.freeze()


def create_app(*, check_migrations: bool = True) -> FastAPI:
    """Build the ASGI app. Refuses to start on a database behind its migrations."""
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if check_migrations:
            check_current(get_engine())
        if settings.warm_code_index:  # build the ICD-10-CM index off the request path, once
            threading.Thread(target=warm_start, name="icd10cm-index", daemon=True).start()
        # The audit sealer: one thread per process; a PostgreSQL advisory lock lets one
        # process seal at a time. Stops (finishing its round) when the app shuts down.
        sealer = None
        if settings.audit_seal_interval_seconds > 0:
            sealer = BackgroundSealer(settings.audit_seal_interval_seconds)
            sealer.start()
        try:
            yield
        finally:
            if sealer is not None:
                sealer.stop()

    app = FastAPI(
        title="Chartdesk",
        version=__version__,
        description="Work queue for remote medical coding. See API.md for the contract.",
        lifespan=lifespan,
        docs_url=None if settings.production else "/docs",
        redoc_url=None,
        dependencies=[Depends(refuse_nul)],  # every route: no NUL in any field (422)
        telemetry=_telemetry(),
    )
    if not settings.production and settings.demo_file is not None:
        from server.demo import load_demo_users

        app.state.demo_users = load_demo_users(settings.demo_file)
    app.state.keyring_check = load_keyring
    app.state.oidc_enabled = bool(settings.oidc_discovery_url and settings.oidc_client_id)
    app.add_middleware(SecurityMiddleware)
    install_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # In this order: queue and qa before workbench (/api/v1/work/mine, /qa/mine before the
    # item routes). Each router skips the paths none of its routes fit (web/routing.py).
    for module in (
        web_router,
        auth_router,
        oidc_router,
        records_router,
        queue_router,
        qa_router,
        workbench_router,
        coding_router,
        sampling_router,
        billing_router,
        queries_router,
        edits_router,
        audit_router,
        reports_router,
    ):
        app.include_router(skip_unrelated_paths(module.router))
    return app
