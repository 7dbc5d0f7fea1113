"""`harvest_day`: one Beijing-time day of one account into one resumable directory.

The vendor's limit is per account, so parallel work pays across accounts, not across days
of one account: the natural unit for a scheduler (Dagster partitions, Airflow mapped tasks)
is (account, day). Running it again after a failure or a kill fetches only what is missing;
running it on a finished directory sends no request at all and returns the same manifest.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal

from ..beijing import as_beijing
from ..client import CollectClient
from .outdir import DirectorySink
from .plan import DEFAULT_KINDS, Window
from .request import HarvestRequest
from .scheduler import Harvester

__all__ = ["harvest_day"]


async def harvest_day(
    client: CollectClient,
    out: str | os.PathLike[str],
    day: date,
    *,
    kinds: str | Iterable[str] = DEFAULT_KINDS,
    rooms: Sequence[str] = (),
    format: Literal["jsonl", "parquet"] = "jsonl",
    **harvester_options: Any,
) -> dict[str, Any]:
    """Harvest the lives that started on ``day`` (Beijing time, midnight to midnight) into
    ``out`` and return its manifest (``manifest["complete"]`` says whether every unit is
    in).

    ``harvester_options`` go to :class:`Harvester` (``rate``, ``concurrency``, ...). An
    :class:`~cc_collect_async.AuthError` is raised; units that still fail after their
    retries are listed in the manifest and fetched by the next call. ``out`` holding a
    different harvest raises ``DifferentHarvestError``; one in use by another run raises
    ``OutputError``.
    """
    if isinstance(day, datetime):  # an aware moment is a day in Beijing, as Window reads it
        day = as_beijing(day).date()
    since = datetime(day.year, day.month, day.day)
    window = Window(since, since + timedelta(days=1), rooms=tuple(rooms))
    request = HarvestRequest(
        kinds=kinds if isinstance(kinds, str) else tuple(kinds), window=window, format=format
    )
    source = {"base_url": client.base_url, "userid": client.userid}
    sink = DirectorySink(out, request, source=source)
    sink.open()
    try:
        if sink.already_complete:
            return dict(sink.manifest or {})
        harvester = Harvester(
            client, window=window, kinds=request.kinds, skip=sink.skip, **harvester_options
        )
        await harvester.run(sink)
        return dict(sink.manifest or {})
    finally:
        sink.release()
