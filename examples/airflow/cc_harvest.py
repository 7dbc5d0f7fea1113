"""Airflow: every night, one mapped task per account harvests the Beijing day that ended.

Dynamic task mapping gives each account its own task instance (retried on its own), so
accounts run side by side while each account's requests stay under its own rate limit. The
day is the run's ``data_interval_start`` in Asia/Shanghai: the DAG's schedule runs in that
time zone, so a run covers exactly one vendor day. Each (account, day) is one resumable
directory: a retry fetches only the missing units; a finished day sends no request.

Environment: ``CC_ACCOUNTS`` (comma-separated account ids), ``CC_API_KEY_<ACCOUNT>`` for
each, optional ``CC_BASE_URL`` and ``CC_DATA_DIR`` (default ``cc-data``). Try it::

    airflow dags test cc_harvest 2026-11-01
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import dag, get_current_context, task

SHANGHAI = pendulum.timezone("Asia/Shanghai")


@dag(
    schedule="0 0 * * *",  # midnight in the start date's zone: Beijing midnight
    start_date=pendulum.datetime(2026, 11, 1, tz=SHANGHAI),
    catchup=False,
    tags=["cc_collect"],
)
def cc_harvest() -> None:
    @task
    def accounts() -> list[str]:
        return [a.strip() for a in os.environ.get("CC_ACCOUNTS", "").split(",") if a.strip()]

    @task(retries=3, retry_delay=timedelta(minutes=1))
    def harvest(account: str) -> dict[str, Any]:
        import anyio

        from cc_collect_async import CollectClient, harvest_day

        start = get_current_context()["data_interval_start"]
        assert start is not None
        day: date = pendulum.instance(start).in_timezone(SHANGHAI).date()
        # The key stays in the environment: never in a task argument, an XCom or a log.
        api_key = os.environ.get(f"CC_API_KEY_{account}")
        if not api_key:
            raise RuntimeError(f"set CC_API_KEY_{account} to the API key of account {account}")
        base_url = os.environ.get("CC_BASE_URL", "https://ccapi.csslcloud.net")
        out = Path(os.environ.get("CC_DATA_DIR", "cc-data"), account, day.isoformat())

        async def run() -> dict[str, Any]:
            async with CollectClient(account, api_key, base_url=base_url) as client:
                return await harvest_day(client, out, day)

        manifest = anyio.run(run)
        if not manifest["complete"]:
            # Failing the task makes Airflow retry it; the retry fetches only what is missing.
            raise RuntimeError(f"{manifest['units']['failed']} unit(s) failed in {out}")
        return {
            "account": account,
            "day": day.isoformat(),
            "path": str(out),
            "lives": manifest["lives"],
            "records": manifest["records"],
        }

    harvest.expand(account=accounts())


cc_harvest()
