"""Running one measured thing in its own process: a harvest through the library API, the
``cc-collect harvest`` command, or a request loop; and what the server saw meanwhile.

Every run gets a fresh process, so its CPU time and peak memory are its own, and the
simulator's counters are reset before it, so its rejections are its own too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from .harvest_child import HarvestJob
from .servers import SimServer

__all__ = ["Run", "api_harvest", "child_json", "cli_harvest", "cli_path", "request_loop"]

_ROOT = str(Path(__file__).resolve().parents[1])


@attrs.define
class Run:
    """What one run did and cost. Times in seconds, memory in MB."""

    label: str
    #: Harvest (or loop) time: the harvester's own clock, or the command's wall time.
    duration: float
    #: Requests the client sent (rejected ones included).
    requests: int
    #: Requests the server answered normally, and the ones it turned away as too fast.
    ok: int
    rejected: int
    cpu: float
    server_cpu: float
    peak_rss_mb: float
    records: int = 0
    complete: bool = True
    engine: str | None = None
    stopped: bool = False
    extra: dict[str, Any] = attrs.field(factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration if self.duration else 0.0

    @property
    def cpu_per_request_us(self) -> float:
        return self.cpu / self.requests * 1e6 if self.requests else float("nan")

    @property
    def server_cpu_per_request_us(self) -> float:
        return self.server_cpu / self.requests * 1e6 if self.requests else float("nan")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH", "")) if p)
    return env


def child_json(module: str, *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run ``python -m <module> <args>`` and return the JSON object it printed last."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
        cwd=_ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{module} printed no result:\n{done.stdout[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def api_harvest(server: SimServer, label: str, **job: Any) -> Run:
    """A harvest through :class:`~cc_collect_async.harvest.Harvester` in a child process."""
    if "lives" not in job:
        job.setdefault("since", server.since.isoformat())
        job.setdefault("until", server.until.isoformat())
    spec = HarvestJob(base_url=server.url, userid=server.userid, api_key=server.api_key, **job)
    result, run = _measured_child(server, label, "benchmarks.harvest_child", spec.to_json())
    run.records = result["records"]
    run.complete = result["complete"]
    run.engine = result["engine"]
    run.stopped = result["stopped"]
    run.extra.update(final_rate=result["final_rate"], failures=result["failures"])
    return run


def _measured_child(
    server: SimServer, label: str, module: str, job: str
) -> tuple[dict[str, Any], Run]:
    """Run a measuring child (it prints duration, requests, cpu, peak_rss_mb) against the
    server with its counters reset: the child's result, and the Run of what both saw."""
    server.reset()
    cpu_before = server.cpu_seconds()
    result = child_json(module, job)
    server_cpu = server.cpu_seconds() - cpu_before
    stats = server.stats()
    run = Run(
        label=label,
        duration=result["duration"],
        requests=result["requests"],
        ok=stats["ok"],
        rejected=stats["rate_limited"],
        cpu=result["cpu"],
        server_cpu=server_cpu,
        peak_rss_mb=result["peak_rss_mb"],
        extra={
            "arrivals": stats.get("arrivals_per_100ms", []),
            "stalls": stats.get("stalls", 0),
            "stalled": stats.get("stalled", 0.0),
        },
    )
    return result, run


def cli_path() -> list[str] | None:
    """How to start ``cc-collect`` (its entry point, wrapped to report its peak memory), or
    None when the command is not installed."""
    try:
        import cc_collect_async.cli  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "benchmarks.cli_child"]


def cli_harvest(
    server: SimServer,
    label: str,
    args: Sequence[str],
    *,
    keep: Path | None = None,
    quiet: bool = True,
) -> Run:
    """``cc-collect harvest`` writing JSON lines, as a user runs it; measured from outside.

    Duration is the command's wall time (interpreter start and the final assembly of the
    output files included); CPU time comes from the kernel's accounting of the child, peak
    RSS from the child itself (see :mod:`benchmarks.cli_child`).
    """
    command = cli_path()
    if command is None:
        raise RuntimeError("cc-collect is not installed")
    out = Path(keep or tempfile.mkdtemp(prefix="cc-bench-")) / "out"
    argv = [
        *command,
        "harvest",
        "--since",
        server.since.strftime("%Y-%m-%d %H:%M"),
        "--until",
        server.until.strftime("%Y-%m-%d %H:%M"),
        "--out",
        str(out),
        "--format",
        "jsonl",
        *(["--quiet"] if quiet else []),
        "--json",
        *args,
    ]
    server.reset()
    cpu_before = server.cpu_seconds()
    peak_file = out.parent / "peak-rss"
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        env = {
            **server.cli_env(),
            "PYTHONPATH": _env()["PYTHONPATH"],
            "CC_BENCH_PEAK_FILE": str(peak_file),
        }
        process = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env, cwd=_ROOT)
        # wait4, not wait: it also returns the child's own CPU time and peak RSS.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read(), stderr.read()
    server_cpu = server.cpu_seconds() - cpu_before
    stats = server.stats()
    if process.returncode not in (0, 1):
        raise RuntimeError(f"cc-collect exited {process.returncode}: {errors.decode()[-2000:]}")
    manifest = json.loads(output.decode())
    try:
        return Run(
            label=label,
            duration=wall,
            requests=int(manifest.get("requests") or 0),
            ok=stats["ok"],
            rejected=stats["rate_limited"],
            cpu=usage.ru_utime + usage.ru_stime,
            server_cpu=server_cpu,
            peak_rss_mb=float(peak_file.read_text()),
            records=int(manifest.get("records") or 0),
            complete=bool(manifest.get("complete")),
            extra={
                "out": str(out),
                "arrivals": stats.get("arrivals_per_100ms", []),
                "stalls": stats.get("stalls", 0),
                "failed": len(manifest.get("failures") or []),
                "stderr": errors.decode(errors="replace"),
            },
        )
    finally:
        if keep is None:
            shutil.rmtree(out.parent, ignore_errors=True)


def request_loop(
    server: SimServer,
    label: str,
    mode: str,
    pairs: Sequence[tuple[str, str]],
    *,
    requests: int,
    concurrency: int,
    time_limit: float | None = None,
    loop: str = "asyncio",
    stdlib_json: bool = False,
) -> Run:
    """A loop of chat requests (see :mod:`benchmarks.request_loops`) in a child process."""
    job = {
        "mode": mode,
        "base_url": server.url,
        "userid": server.userid,
        "api_key": server.api_key,
        "pairs": [list(p) for p in pairs],
        "requests": requests,
        "concurrency": concurrency,
        "time_limit": time_limit,
        "loop": loop,
        "stdlib_json": stdlib_json,
    }
    result, run = _measured_child(server, label, "benchmarks.request_loops", json.dumps(job))
    run.stopped = result.get("stopped", False)
    return run
