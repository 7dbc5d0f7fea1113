"""One harvest through the library API, in a fresh process, measured from inside.

``python -m benchmarks.harvest_child '<json job>'`` builds a :class:`CollectClient` and a
:class:`Harvester` from the job, runs the harvest into a sink that only counts (or writes
JSON lines), and prints one JSON line: harvest time (the harvester's own clock), client CPU
(``time.process_time()`` around the harvest only, so interpreter start-up is not counted),
peak RSS, and the harvest report's counters. A fresh process per run keeps runs from
sharing a heap, a warmed-up pool or an event loop.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from datetime import datetime
from typing import Any

import anyio
import attrs

from cc_collect_async import CollectClient
from cc_collect_async.harvest import Batch, Harvester, HarvestReport, Live, UnitResult, Window

from .peak import peak_rss_mb

__all__ = ["CountingSink", "HarvestJob", "JsonlSink", "main", "run_job"]


@attrs.frozen(kw_only=True)
class HarvestJob:
    base_url: str
    userid: str
    api_key: str
    since: str | None = None
    until: str | None = None
    lives: list[tuple[str, str]] | None = None
    kinds: tuple[str, ...] = ("chat", "access", "vote", "answercard", "rollcall")
    rate: float | None = None
    burst: int = 1
    initial_rate: float | None = None
    concurrency: int = 8
    http_backend: str = "auto"
    #: "count" (drop records, count them) or a path for one JSON-lines file.
    sink: str = "count"
    #: "asyncio" or "uvloop".
    loop: str = "asyncio"
    #: Stop the harvest after this many seconds (its throughput is then over that time).
    time_limit: float | None = None
    #: Decode with the standard json module instead of orjson (to measure what orjson buys).
    stdlib_json: bool = False

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> HarvestJob:
        data = json.loads(text)
        if data.get("lives") is not None:
            data["lives"] = [tuple(pair) for pair in data["lives"]]
        data["kinds"] = tuple(data["kinds"])
        return cls(**data)


class CountingSink:
    """Counts records and drops them: the cheapest sink there is."""

    def __init__(self) -> None:
        self.records = 0

    async def live(self, live: Live) -> None:
        pass

    async def write(self, batch: Batch) -> None:
        self.records += len(batch.records)

    async def unit_end(self, result: UnitResult) -> None:
        pass

    async def close(self, report: HarvestReport) -> None:
        pass


class JsonlSink(CountingSink):
    """Appends every record to one JSON-lines file as it arrives (no unit commit)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        from cc_collect_async.json_codec import dumps_line

        self._encode = dumps_line
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()

    async def write(self, batch: Batch) -> None:
        await super().write(batch)
        self._file.write(b"".join(self._encode(record) for record in batch.records))

    async def close(self, report: HarvestReport) -> None:
        self._file.close()


async def _harvest(job: HarvestJob) -> dict[str, Any]:
    sink = CountingSink() if job.sink == "count" else JsonlSink(job.sink)
    extra: dict[str, Any] = {}
    if job.initial_rate is not None:
        extra["initial_rate"] = job.initial_rate
    async with CollectClient(
        job.userid,
        job.api_key,
        base_url=job.base_url,
        max_concurrency=job.concurrency,
        http_backend=job.http_backend,  # type: ignore[arg-type]
    ) as client:
        window = (
            Window(datetime.fromisoformat(job.since), datetime.fromisoformat(job.until))
            if job.lives is None and job.since and job.until
            else None
        )
        harvester = Harvester(
            client,
            window=window,
            lives=job.lives,
            kinds=job.kinds,
            rate=job.rate,
            burst=job.burst,
            concurrency=job.concurrency,
            **extra,
        )
        cpu = time.process_time()
        with anyio.move_on_after(job.time_limit or math.inf) as scope:
            await harvester.run(sink)
        cpu = time.process_time() - cpu
        report = harvester.report
        engine = client.engine
    return {
        "duration": report.duration,
        "cpu": cpu,
        "requests": report.requests,
        "retries": report.retries,
        "rate_limited": report.rate_limited,
        "records": sink.records,
        "units": report.units,
        "lives": report.lives,
        "failures": len(report.failures),
        "complete": report.complete,
        "engine": engine,
        "final_rate": harvester.rate_limiter.rate,
        "stopped": scope.cancelled_caught,
    }


def run_job(job: HarvestJob) -> dict[str, Any]:
    if job.stdlib_json:
        from cc_collect_async import core

        core.loads = json.loads
    # Imported before the clock starts: a one-off cost, not a per-request one.
    with contextlib.suppress(ImportError):
        import aiohttp  # noqa: F401
    backend_options = {"use_uvloop": True} if job.loop == "uvloop" else {}
    result = anyio.run(_harvest, job, backend="asyncio", backend_options=backend_options)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main(argv: list[str]) -> int:
    job = HarvestJob.from_json(argv[0])
    print(json.dumps(run_job(job)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
