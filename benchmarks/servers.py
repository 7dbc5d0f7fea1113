"""The load target of every benchmark: the simulator in its own process, on loopback TCP.

:class:`SimServer` wraps :func:`cc_collect_async.sim.spawn` and adds what a benchmark needs
around it: the server's own counters (``/_sim/stats``), a reset between runs, and the CPU
time the server process has used, read from ``/proc`` so client and server costs are
reported apart (they share the machine's cores).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import httpx

from cc_collect_async.sim import DEMO_API_KEY, DEMO_USERID, Dataset, DatasetSpec, SimConfig, spawn

__all__ = ["SimServer", "children_named", "process_cpu_seconds", "sim_server"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def process_peak_rss_mb(pid: int) -> float:
    """Peak resident set of a live process (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children_named(marker: str) -> set[int]:
    """PIDs of this process's children whose command line contains ``marker``."""
    me = os.getpid()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != me:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if marker in cmdline:
            found.add(int(entry.name))
    return found


@attrs.define
class SimServer:
    """A running simulator process and what is known about it."""

    url: str
    pid: int
    spec: DatasetSpec
    config: SimConfig
    userid: str = DEMO_USERID
    api_key: str = DEMO_API_KEY
    _dataset: Dataset | None = None

    @property
    def since(self) -> datetime:
        return self.spec.window_start

    @property
    def until(self) -> datetime:
        return self.spec.window_start + timedelta(days=self.spec.window_days)

    @property
    def dataset(self) -> Dataset:
        """The same deterministic data set the server holds (built here on first use)."""
        if self._dataset is None:
            self._dataset = Dataset(self.spec)
        return self._dataset

    def lives(self) -> list[tuple[str, str]]:
        return [(live.roomid, live.liveid) for live in self.dataset.lives(self.since, self.until)]

    def records(self, kinds: tuple[str, ...]) -> int:
        return self.dataset.total_records(self.since, self.until, kinds=kinds)

    def stats(self) -> dict[str, Any]:
        reply = httpx.get(f"{self.url}/_sim/stats", timeout=10)
        reply.raise_for_status()
        data: dict[str, Any] = reply.json()
        return data

    def reset(self) -> None:
        """Zero the counters, refill the rate-limit buckets."""
        httpx.get(f"{self.url}/_sim/reset", timeout=10).raise_for_status()

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def cli_env(self) -> dict[str, str]:
        """Environment for ``cc-collect`` pointed at this server."""
        env = dict(os.environ)
        env.update(CC_USERID=self.userid, CC_API_KEY=self.api_key, CC_BASE_URL=self.url)
        return env


@contextlib.contextmanager
def sim_server(spec: DatasetSpec, config: SimConfig | None = None) -> Iterator[SimServer]:
    """Spawn the simulator (uvicorn, with httptools and uvloop when installed)."""
    config = config or SimConfig()
    before = children_named("cc_collect_async.sim")
    with spawn(spec, config) as url:
        new = children_named("cc_collect_async.sim") - before
        if len(new) != 1:
            raise RuntimeError(f"cannot tell which child is the simulator: {sorted(new)}")
        yield SimServer(url=url, pid=new.pop(), spec=spec, config=config)
