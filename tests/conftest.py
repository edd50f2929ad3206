"""Test fixtures: every test gets its own database, built by migrations, on SQLite and PostgreSQL.

The database is migrated once per backend into a template; each test then gets a copy (a
file copy on SQLite, CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY on a PostgreSQL
cluster kept in memory; see tests/support/databases.py). Real commits happen, so what must
survive a rollback (refused attempts), what runs in several processes or threads and what
opens its own connection are all tested for real.

Why copies and not one database with a rolled-back savepoint per test (DESIGN.md, 10):
measured on these 2 cores, a copy costs ~1 ms on SQLite and 15-25 ms on PostgreSQL in
memory (0.3-1 s on the shared disk, which was the real cost), about 70 ms of setup and
30 ms of teardown per PostgreSQL test in all. A savepoint would save a few seconds of a
run, against binding every session the app, the factories, the sealer and the
after-the-request audit writes open (all via server.db.get_engine) to the test's
connection, and marking the many tests that need real commits.

Also here: a cheap argon2id hasher for the run (production parameters are checked by
test_passwords.py) and the app's background audit sealer off unless a test is marked
`sealer`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlmodel import Session

from server.coding import codesets
from server.config import get_settings
from server.db import get_engine
from server.web.protocol import NoDelayHttpToolsProtocol
from tests.support.databases import TEMPLATE_DB, Databases
from tests.support.pgcluster import Cluster, find_pg_bin, free_port, memory_dir, start_cluster

os.environ.setdefault("CHARTDESK_ENV", "development")
os.environ.setdefault("CHARTDESK_WARM_CODE_INDEX", "false")  # built on first use instead
os.environ.pop("CHARTDESK_DEMO_FILE", None)
# The app's background audit sealer is off in tests (a thread per app, waking twice a
# second); tests marked `sealer` run it at the production setting.
os.environ.setdefault("CHARTDESK_AUDIT_SEAL_INTERVAL_SECONDS", "0")
# Outpatient visits are billed as an office's (837P, practitioner edit tables) unless a test
# sets the hospital setting: a hospital outpatient visit goes out on an 837I (013x) with the
# hospital outpatient tables (the production default; see server/billing/kind.py).
os.environ.setdefault("CHARTDESK_BILLING_FACILITY_SETTING", "office")


def _backends() -> list[str]:
    wanted = os.environ.get("CHARTDESK_TEST_DB", "sqlite,postgresql")
    return [b.strip() for b in wanted.split(",") if b.strip()]


def reset_caches() -> None:
    """Forget settings and engine so the next use reads the current environment."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    get_settings.cache_clear()


# argon2id as production runs it costs ~0.3-0.5 s per hash or check on these 2 cores, and
# nearly every test creates users and signs in. Tests hash with the same algorithm at its
# cheapest cost; test_passwords.py checks the production parameters on the real hasher.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(scope="session", autouse=True)
def production_hasher() -> Iterator[PasswordHasher]:
    """Swap in a cheap argon2id hasher for the run; yields the production one."""
    from server.auth import passwords

    real = passwords._hasher
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(passwords, "_hasher", CHEAP_HASHER)
        mp.setattr(passwords, "_DUMMY_HASH", CHEAP_HASHER.hash("dummy-for-unknown-users"))
        yield real


@pytest.fixture(autouse=True)
def _sealer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests marked `sealer` get the app's background sealer at its default interval."""
    if request.node.get_closest_marker("sealer"):
        monkeypatch.delenv("CHARTDESK_AUDIT_SEAL_INTERVAL_SECONDS", raising=False)
        get_settings.cache_clear()


@pytest.fixture(autouse=True)
def keyring(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets a fresh keyring file (mode 0600) at CHARTDESK_KEYRING_FILE."""
    from server.keyring import init_keyring

    path = tmp_path_factory.mktemp("keys") / "keyring.json"
    init_keyring(path)
    monkeypatch.setenv("CHARTDESK_KEYRING_FILE", str(path))
    get_settings.cache_clear()
    return path


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster | None]:
    """A throwaway PostgreSQL 15 cluster for the whole run (None if PG is not wanted)."""
    if "postgresql" not in _backends():
        yield None
        return
    if find_pg_bin() is None:
        if os.environ.get("CHARTDESK_TEST_REQUIRE_PG"):
            pytest.fail("PostgreSQL binaries not found and CHARTDESK_TEST_REQUIRE_PG is set")
        yield None
        return
    cluster = start_cluster(fast=True, parent=memory_dir())
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def databases(
    pg_cluster: Cluster | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Databases]:
    """Migrate one template database per backend; tests get copies of them."""
    from server.migrate import upgrade

    made = Databases()
    if "sqlite" in _backends():
        path = tmp_path_factory.mktemp("sqlite") / "template.db"
        upgrade(f"sqlite:///{path}")
        made.sqlite_template = path
    if pg_cluster is not None:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        upgrade(pg_cluster.url(TEMPLATE_DB))
        made.cluster = pg_cluster
    reset_caches()
    yield made
    made.close()


def require_backend(backend: str, databases: Databases) -> None:
    """Skip (or fail, in CI) a test whose backend this machine does not have."""
    if backend in databases.backends:
        return
    if backend not in _backends():
        pytest.skip(f"CHARTDESK_TEST_DB={os.environ.get('CHARTDESK_TEST_DB')} leaves out {backend}")
    msg = (
        f"{backend} is not available on this machine (install Debian's postgresql); "
        "the PostgreSQL half of the suite is SKIPPED"
    )
    if os.environ.get("CHARTDESK_TEST_REQUIRE_PG"):
        pytest.fail(msg)
    pytest.skip(msg)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses the database once per backend.

    `pg_only` tests, and browser tests (the API tests cover both backends; a browser adds
    the page, not the database), run on PostgreSQL only.
    """
    if "backend" in metafunc.fixturenames:
        get = metafunc.definition.get_closest_marker
        backends = ["postgresql"] if get("pg_only") or get("browser") else _backends()
        metafunc.parametrize("backend", backends, scope="session")


@pytest.fixture
def db_url(
    backend: str,
    databases: Databases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A fresh migrated database for this test; the app's settings point at it."""
    require_backend(backend, databases)
    url = databases.create(backend, tmp_path)
    monkeypatch.setenv("CHARTDESK_DATABASE_URL", url)
    reset_caches()
    yield url
    reset_caches()
    databases.drop(url)


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    """A session on the test database; commit explicitly to make rows visible to the app."""
    with Session(get_engine(), expire_on_commit=False) as s:
        yield s


@pytest.fixture
def app(db_url: str) -> Any:
    """The application against the test database."""
    from server.main import create_app

    return create_app()


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    """An HTTP client on the app (no cookies yet)."""
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def make_client(app: Any) -> Iterator[Any]:
    """A factory of independent clients (each its own cookie jar)."""
    clients: list[TestClient] = []

    def make() -> TestClient:
        c = TestClient(app, base_url="http://testserver")
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


class LiveServer:
    """The app served by uvicorn in a thread, for browsers and multi-client tests."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            http=NoDelayHttpToolsProtocol,  # what `chartdesk serve` runs
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        # The ICD-10-CM index is built once per process (a few seconds, longer on a busy
        # machine); a served app builds it at start-up before coders arrive. Build it before
        # serving so that a browser's first chart does not outwait its expectations.
        codesets.icd10cm()
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("live server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app: Any) -> Iterator[LiveServer]:
    """The app on a real port."""
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Drive Debian's Chromium; never Playwright's downloaded browsers."""
    return {
        **browser_type_launch_args,
        "executable_path": shutil.which("chromium") or "/usr/bin/chromium",
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


@pytest.fixture(scope="session")
def scratch_dir() -> Iterator[Path]:
    """A session-wide scratch folder outside pytest's 0700 tmp (other users may read it)."""
    path = Path(tempfile.mkdtemp(prefix="chartdesk-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
