"""Start Chartdesk with 2 worker processes for the benchmark; CPU time and peak RSS per process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.pgcluster import free_port

TICK = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _is_worker(pid: int) -> bool:
    """A uvicorn worker, not multiprocessing's resource tracker."""
    try:
        return b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """`chartdesk serve --workers 2` on a free port, development env, the bench's keyring."""

    def __init__(
        self, root: Path, env: dict[str, str], workers: int = 2, app: str | None = None
    ) -> None:
        """`app`: another ASGI app ("module:attr") under plain uvicorn with httptools."""
        self.port = free_port()
        self.env = env
        bindir = Path(sys.executable).parent
        command = [str(bindir / "chartdesk"), "serve", "--workers", str(workers)]
        if app is not None:
            command = [str(bindir / "uvicorn"), app, "--workers", str(workers)]
            command += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
        self.log = Path(tempfile.mkstemp(prefix="chartdesk-bench-serve-", suffix=".log")[1])
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [*command, "--port", str(self.port)],
                cwd=root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("chartdesk serve did not answer /healthz")
        self.workers: list[int] = []
        self.settle()

    def settle(self, limit: float = 120.0) -> float:
        """Wait until the workers are idle (start-up work such as code set indexes done).

        Returns the seconds waited. Idle: under 5% of a core over one second.
        """
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            before = self.cpu()
            time.sleep(1.0)
            if self.cpu() - before < 0.05:
                break
        return time.monotonic() - t0

    def cpu(self) -> float:
        """CPU seconds used so far by the workers (a replaced worker counts from its start)."""
        # One worker: uvicorn serves in the process it was started as.
        self.workers = [p for p in children(self.proc.pid) if _is_worker(p)] or [self.proc.pid]
        return sum(cpu_seconds(p) for p in self.workers)

    def restarts(self) -> int:
        """Workers uvicorn's supervisor found dead or unresponsive and replaced."""
        text = self.log.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if "Child process" in line and "died" in line)

    def rss(self) -> list[float]:
        """Peak resident memory (MB) of the master, then of each worker."""
        return [peak_rss_mb(p) for p in [self.proc.pid, *self.workers]]

    def pause(self) -> None:
        """Freeze the master and its workers (SIGSTOP), sealer thread included."""
        self.cpu()  # refresh the worker list
        for pid in [self.proc.pid, *self.workers]:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT); its connections stayed open."""
        for pid in [self.proc.pid, *self.workers]:
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self.proc.terminate()
        self.proc.wait(timeout=20)


def keys_init(root: Path, env: dict[str, str]) -> None:
    """A fresh keyring at CHARTDESK_KEYRING_FILE (shared by the loader and every server)."""
    chartdesk = str(Path(sys.executable).parent / "chartdesk")
    subprocess.run([chartdesk, "keys", "init"], cwd=root, env=env, check=True, capture_output=True)


def samples(files: list[Path]) -> Iterator[tuple[str, int]]:
    """(stack, count) of every sample in py-spy's raw files (a message line is skipped)."""
    for f in files:
        if not f.exists():
            continue
        for line in f.read_text(errors="replace").splitlines():
            stack, _, n = line.rpartition(" ")
            if stack and n.isdigit():
                yield stack, int(n)


class Profile:
    """py-spy (dev extra) sampling every worker for `seconds`, collapsed stacks to `prefix`."""

    def __init__(self, server: Server, prefix: Path, seconds: float) -> None:
        spy = str(Path(sys.executable).parent / "py-spy")
        self.files = [prefix.with_name(f"{prefix.name}-{pid}.txt") for pid in server.workers]
        self.procs = [
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(seconds)),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--gil",
                    "-o",
                    str(f),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid, f in zip(server.workers, self.files, strict=True)
        ]

    def summary(self, top: int = 12) -> list[tuple[str, float]]:
        """Wait for py-spy; Chartdesk's own frames by share of GIL-holding samples.

        A frame's share counts every sample whose stack includes it (inclusive time), over
        all samples of the workers (framework, SQLAlchemy and the sealer thread included).
        """
        for p in self.procs:
            p.wait(timeout=120)
        inclusive: dict[str, int] = {}
        total = 0
        for stack, count in samples(self.files):
            total += count
            for frame in set(stack.split(";")):
                if "(server/" in frame:
                    inclusive[frame] = inclusive.get(frame, 0) + count
        ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
        return [(frame, n / total) for frame, n in ranked] if total else []
