"""Dagster: one asset partitioned by account x day (Asia/Shanghai), one run per account.

The vendor's rate limit is per account, so partitions of different accounts run side by
side and the days of one account run one after the other (``dagster.yaml`` beside this
file: a run-tag limit of one run per ``dagster/partition/account`` value). Each partition is
one resumable directory: a retried or re-executed partition fetches only what is missing,
and a finished one sends no request.

Environment: ``CC_ACCOUNTS`` (comma-separated account ids), ``CC_API_KEY_<ACCOUNT>`` for
each, optional ``CC_BASE_URL``, ``CC_DATA_DIR`` (default ``cc-data``) and ``CC_START_DATE``
(first day, default 2026-11-01). Try it::

    dagster asset materialize -f examples/dagster/defs.py --select cc_day \\
        --partition "ACCOUNT|2026-11-01"
"""

# No `from __future__ import annotations`: Dagster reads the context annotation at runtime.
import os
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import dagster as dg

from cc_collect_async import CollectClient, harvest_day

ACCOUNTS = [a.strip() for a in os.environ.get("CC_ACCOUNTS", "").split(",") if a.strip()]

partitions = dg.MultiPartitionsDefinition(
    {
        "account": dg.StaticPartitionsDefinition(ACCOUNTS),
        "day": dg.DailyPartitionsDefinition(
            start_date=os.environ.get("CC_START_DATE", "2026-11-01"),
            timezone="Asia/Shanghai",  # the vendor's days are Beijing days
        ),
    }
)


async def _harvest(account: str, day: date, out: Path) -> dict[str, Any]:
    # The key stays in the environment: never in a partition key, a tag or a log line.
    api_key = os.environ.get(f"CC_API_KEY_{account}")
    if not api_key:
        raise dg.Failure(f"set CC_API_KEY_{account} to the API key of account {account}")
    base_url = os.environ.get("CC_BASE_URL", "https://ccapi.csslcloud.net")
    async with CollectClient(account, api_key, base_url=base_url) as client:
        return await harvest_day(client, out, day)


@dg.asset(
    partitions_def=partitions,
    retry_policy=dg.RetryPolicy(max_retries=3, delay=60),
    description="Every chat, access, vote, answer-card and roll-call record of one "
    "account's lives that started on one Beijing day.",
)
def cc_day(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    keys = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
    account, day = keys["account"], date.fromisoformat(keys["day"])
    out = Path(os.environ.get("CC_DATA_DIR", "cc-data"), account, day.isoformat())
    manifest = anyio.run(_harvest, account, day, out)
    if not manifest["complete"]:
        # Failing the run makes Dagster retry it; the retry fetches only the missing units.
        raise dg.Failure(
            f"{manifest['units']['failed']} unit(s) failed", metadata={"path": str(out)}
        )
    return dg.MaterializeResult(
        metadata={
            "path": str(out),
            "lives": manifest["lives"],
            "records": manifest["records"],
            "requests": manifest["requests"],
        }
    )


defs = dg.Definitions(assets=[cc_day])
