"""Start Chartdesk with 2 worker processes for the benchmark; CPU time and peak RSS per process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.pgcluster import free_port

TICK = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """`chartdesk serve --workers 2` on a free port, with a fresh keyring, development env."""

    def __init__(self, root: Path, db_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.keydir = tempfile.mkdtemp(prefix="chartdesk-bench-keys-")
        self.port = free_port()
        self.env = dict(
            os.environ,
            CHARTDESK_DATABASE_URL=db_url,
            CHARTDESK_ENV="development",
            CHARTDESK_KEYRING_FILE=f"{self.keydir}/keyring.json",
            **(extra_env or {}),
        )
        chartdesk = str(Path(sys.executable).parent / "chartdesk")
        subprocess.run(
            [chartdesk, "keys", "init"], cwd=root, env=self.env, check=True, capture_output=True
        )
        self.proc = subprocess.Popen(
            [chartdesk, "serve", "--workers", "2", "--port", str(self.port)],
            cwd=root,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.workers = children(self.proc.pid)

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.workers)

    def rss(self) -> list[float]:
        return [peak_rss_mb(p) for p in self.workers]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


async def _load(base: str, path: str, clients: int, seconds: float) -> list[float]:
    lat: list[float] = []
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=clients)) as c:

        async def one() -> None:
            while time.monotonic() < stop:
                t = time.perf_counter()
                r = await c.get(path)
                r.raise_for_status()
                lat.append(time.perf_counter() - t)

        await asyncio.gather(*(one() for _ in range(clients)))
    return lat


def load_get(base: str, path: str, clients: int, seconds: float) -> list[float]:
    """N concurrent asyncio+httpx clients GETting `path` for `seconds`; latencies in seconds."""
    return asyncio.run(_load(base, path, clients, seconds))
