"""A throwaway PostgreSQL cluster, started as the `postgres` system user when we are root.

Used by the test suite and by `make bench`. See ../shared/TESTING.md for the traps.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def find_pg_bin() -> Path | None:
    """The folder holding initdb/pg_ctl: PATH first, then Debian's versioned folders."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running cluster: connect as the `postgres` superuser over TCP on loopback."""

    bindir: Path
    root: Path
    port: int
    as_postgres: bool
    options: str = ""  # the postgres -c options it was started with

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """SQLAlchemy URL for a database on this cluster."""
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """libpq connection string for a database on this cluster."""
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, cwd=self.root, check=True, capture_output=True, text=True)

    def start(self) -> None:
        """Start the server on its data folder (again, after `halt`)."""
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.root / "data"),
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
            "-o",
            self.options,
        )

    def halt(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data for `start`. `fast` disconnects everyone and
        shuts down cleanly (an operator's stop); `immediate` is a crash, and on a `fast=True`
        cluster (fsync off) recent commits may then be lost."""
        data = str(self.root / "data")
        self._run(str(self.bindir / "pg_ctl"), "-D", data, "-m", mode, "-w", "stop")

    def stop(self) -> None:
        """Stop immediately and remove the data folder."""
        try:
            self.halt("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def memory_dir(min_free: int = 1 << 30) -> str | None:
    """A RAM-backed folder (Linux's /dev/shm) with `min_free` bytes free, or None.

    Containers often mount a 64 MB /dev/shm: too small for a cluster, so /tmp then.
    """
    shm = Path("/dev/shm")  # noqa: S108 - a private mkdtemp folder inside it
    if not shm.is_dir() or not os.access(shm, os.W_OK | os.X_OK):
        return None
    stat = os.statvfs(shm)
    return str(shm) if stat.f_bavail * stat.f_frsize >= min_free else None


def start_cluster(*, fast: bool = True, parent: str | None = None) -> Cluster:
    """initdb + pg_ctl start on a free port. `fast` turns off fsync (tests only).

    `parent`: where the data folder goes (default /tmp). The test suite puts it in memory:
    on the shared disk each test's CREATE DATABASE took 0.3-1 s when other work was
    writing, against ~20 ms in memory.
    """
    bindir = find_pg_bin()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL binaries (initdb, pg_ctl) not found; install Debian's postgresql package"
        )
    as_postgres = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="chartdesk-pg-", dir=parent or "/tmp"))
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=300"
    if fast:
        opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    cluster = Cluster(bindir=bindir, root=root, port=port, as_postgres=as_postgres, options=opts)
    cluster._run(
        str(bindir / "initdb"),
        "-D",
        str(root / "data"),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    )
    cluster.start()
    return cluster
