"""The hand-written harvests the library is measured against, as the vendor's demos do it.

``python -m benchmarks.naive_harvests sequential|gather '<json>'`` prints one JSON line.

* sequential: one blocking ``httpx.Client`` request after another, signed with
  :func:`cc_collect_async.thqs.sign`: list the window's lives page by page, then every kind of
  every live, page by page. A 429 is waited out (``Retry-After``) and retried. Given a time
  limit it stops there and reports how far it got (the caller extrapolates).
* gather: the same requests as coroutines under one ``asyncio.gather`` over an
  ``httpx.AsyncClient`` with its default pool, no rate limiter and no retry: what a first
  async rewrite looks like. It reports how many requests the server turned away.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx

from cc_collect_async import thqs

_LIVES = "/collect/live/record"
_PAGED = {"vote": "/collect/vote/record", "answercard": "/collect/answercard/record"}
_WHOLE = {"chat": "/collect/live/chat/record/", "access": "/collect/live/user/record/"}
_ROLLCALL = "/openapi/collect/rollcall/get"
_PAGE = 100


def _query(job: dict[str, Any], params: dict[str, Any]) -> str:
    return thqs.sign({"userid": job["userid"], **params}, job["api_key"])


def _window(job: dict[str, Any]) -> dict[str, str]:
    def minute(text: str) -> str:
        return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M")

    return {"start_time": minute(job["since"]), "end_time": minute(job["until"])}


def _unit_requests(job: dict[str, Any], roomid: str, liveid: str, kind: str) -> Iterator[str]:
    """The first request of one unit (pages after the first depend on its reply)."""
    if kind in _WHOLE:
        yield f"{_WHOLE[kind]}?{_query(job, {'roomid': roomid, 'liveid': liveid})}"
    elif kind in _PAGED:
        params = {"roomid": roomid, "liveid": liveid, "page_size": 1, "page_length": _PAGE}
        yield f"{_PAGED[kind]}?{_query(job, params)}"
    else:
        params = {"account_id": job["userid"], "live_id": liveid, "page_index": 1, "page_num": 500}
        yield f"{_ROLLCALL}?{thqs.sign(params, job['api_key'])}"


def sequential(job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + (job.get("time_limit") or 1e9)
    requests = rejected = records = 0
    started = time.perf_counter()
    cpu = time.process_time()
    with httpx.Client(base_url=job["base_url"], timeout=30) as http:

        def get(path: str) -> dict[str, Any]:
            nonlocal requests, rejected
            while True:
                requests += 1
                reply = http.get(path)
                if reply.status_code == 429:
                    rejected += 1
                    time.sleep(float(reply.headers.get("retry-after", "1")))
                    continue
                reply.raise_for_status()
                envelope: dict[str, Any] = json.loads(reply.content)
                return envelope

        lives: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {**_window(job), "page_size": page, "page_length": _PAGE}
            reply = get(f"{_LIVES}?{_query(job, params)}")
            lives += reply["data"]
            if page >= reply["page_count"]:
                break
            page += 1
        stopped = False
        for live in lives:
            for kind in job["kinds"]:
                if time.monotonic() > deadline:
                    stopped = True
                    break
                roomid, liveid = live["roomid"], live["liveid"]
                if kind in _WHOLE:
                    (path,) = _unit_requests(job, roomid, liveid, kind)
                    records += len(get(path)["data"] or [])
                elif kind in _PAGED:
                    page = 1
                    while True:
                        params = {
                            "roomid": roomid,
                            "liveid": liveid,
                            "page_size": page,
                            "page_length": _PAGE,
                        }
                        reply = get(f"{_PAGED[kind]}?{_query(job, params)}")
                        records += len(reply["data"] or [])
                        if page >= reply["page_count"]:
                            break
                        page += 1
                else:
                    index = 1
                    while True:
                        params = {
                            "account_id": job["userid"],
                            "live_id": liveid,
                            "page_index": index,
                            "page_num": 500,
                        }
                        body = get(f"{_ROLLCALL}?{thqs.sign(params, job['api_key'])}")["data"]
                        records += len(body["data"] or [])
                        if index * int(body["size"]) >= int(body["total"]):
                            break
                        index += 1
            if stopped:
                break
    return {
        "duration": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "requests": requests,
        "rejected": rejected,
        "records": records,
        "lives": len(lives),
        "stopped": stopped,
    }


async def _gather(job: dict[str, Any]) -> dict[str, Any]:
    requests = rejected = failed = records = 0
    started = time.perf_counter()
    cpu = time.process_time()
    async with httpx.AsyncClient(base_url=job["base_url"], timeout=60) as http:
        lives: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {**_window(job), "page_size": page, "page_length": _PAGE}
            requests += 1
            reply = (await http.get(f"{_LIVES}?{_query(job, params)}")).json()
            lives += reply["data"]
            if page >= reply["page_count"]:
                break
            page += 1

        async def fetch(path: str) -> None:
            nonlocal requests, rejected, failed, records
            requests += 1
            reply = await http.get(path)
            if reply.status_code == 429:
                rejected += 1
                failed += 1
                return
            data = json.loads(reply.content).get("data")
            if isinstance(data, dict):  # rollcall
                data = data.get("data")
            records += len(data or [])

        await asyncio.gather(
            *(
                fetch(path)
                for live in lives
                for kind in job["kinds"]
                for path in _unit_requests(job, live["roomid"], live["liveid"], kind)
            )
        )
    return {
        "duration": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "requests": requests,
        "rejected": rejected,
        "failed_units": failed,
        "records": records,
        "lives": len(lives),
        "stopped": False,
    }


def main(argv: list[str]) -> int:
    mode, job = argv[0], json.loads(argv[1])
    result = sequential(job) if mode == "sequential" else asyncio.run(_gather(job))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
