"""An embedded stand-in for the CC collect API: the vendor's 13 endpoints over synthetic data.

It is what ``cc-collect demo`` talks to, what the behavioural tests run against, and the
load target of the benchmarks. It shares nothing with the client except the published THQS
signing scheme (:mod:`cc_collect_async.thqs`), so a bug in the client's endpoint table or
pagination shows up as a failure instead of being mirrored::

    sim = Simulator(DatasetSpec(lives=50), SimConfig(rate=20, fault_rate=0.1))
    async with httpx.AsyncClient(transport=sim.transport(), base_url="http://sim") as http:
        ...
    with serve(sim) as base_url:        # the same simulator on real loopback TCP
        ...
    truth = sim.dataset.truth(start, end)  # what a lossless harvest must produce
"""

from __future__ import annotations

from .app import VENDOR_PATHS, Simulator
from .behaviour import DEMO_API_KEY, DEMO_USERID, FAULT_KINDS, SimConfig, SimStats
from .data import (
    DATA_KINDS,
    TIME_FORMAT,
    Dataset,
    DatasetSpec,
    LiveInfo,
    Record,
    RecordKey,
    Truth,
    record_key,
)
from .running import RunningDataset
from .server import serve, spawn

__all__ = [
    "DATA_KINDS",
    "DEMO_API_KEY",
    "DEMO_USERID",
    "FAULT_KINDS",
    "TIME_FORMAT",
    "VENDOR_PATHS",
    "Dataset",
    "DatasetSpec",
    "LiveInfo",
    "Record",
    "RecordKey",
    "RunningDataset",
    "SimConfig",
    "SimStats",
    "Simulator",
    "Truth",
    "record_key",
    "serve",
    "spawn",
]
