"""Migrated template databases and the per-test copies made from them.

SQLite: the template is a file, a test's database is a copy of it (~1 ms).
PostgreSQL: `CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY`. PostgreSQL 15's default
strategy (WAL_LOG) writes every block of the 8.5 MB template through the WAL; FILE_COPY
copies the files after a checkpoint (cheap with fsync off): ~60 ms against ~230 ms on an
idle machine. The cluster lives in memory (see pgcluster.start_cluster). The copies are
all made over one admin connection.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.support.pgcluster import Cluster

TEMPLATE_DB = "chartdesk_template"


@dataclass
class Databases:
    """The templates of this run; `create` copies one, `drop` removes a copy."""

    sqlite_template: Path | None = None
    cluster: Cluster | None = None
    _admin: psycopg.Connection | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def backends(self) -> set[str]:
        """The backends that have a template."""
        found = {"sqlite"} if self.sqlite_template else set()
        return found | ({"postgresql"} if self.cluster else set())

    def _admin_conn(self) -> psycopg.Connection:
        assert self.cluster is not None
        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.cluster.dsn(), autocommit=True)
        return self._admin

    def create(self, backend: str, folder: Path, prefix: str = "t") -> str:
        """A fresh copy of `backend`'s template: its SQLAlchemy URL."""
        if backend == "sqlite":
            assert self.sqlite_template is not None
            path = folder / f"{prefix}.db"
            shutil.copyfile(self.sqlite_template, path)
            return f"sqlite:///{path}"
        assert self.cluster is not None
        name = f"{prefix}{os.getpid()}_{next(self._names)}"
        with self._lock:
            self._admin_conn().execute(
                f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB} STRATEGY FILE_COPY"
            )
        return self.cluster.url(name)

    def drop(self, url: str) -> None:
        """Drop a PostgreSQL copy (its connections closed by force); SQLite files stay."""
        if not url.startswith("postgresql") or self.cluster is None:
            return
        name = url.rsplit("/", 1)[1]
        with self._lock:
            self._admin_conn().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        """Close the admin connection."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
