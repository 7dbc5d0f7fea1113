"""The sink protocol: where a harvest's output goes, one committed unit at a time."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

from .events import Batch, UnitResult
from .plan import Live, Unit
from .report import HarvestReport

__all__ = ["MemorySink", "Sink"]


class Sink(Protocol):
    """A writer driven by :meth:`Harvester.run`.

    ``write`` receives a unit's batches in page order; ``unit_end`` then says whether the unit
    is complete (commit it) or failed (discard what ``write`` got for it). ``close`` is always
    called, also when the harvest is cancelled or stopped by an authentication error; by then
    every unit that will ever be complete has been announced through ``unit_end``.
    """

    async def live(self, live: Live) -> None: ...

    async def write(self, batch: Batch) -> None: ...

    async def unit_end(self, result: UnitResult) -> None: ...

    async def close(self, report: HarvestReport) -> None: ...


class MemorySink:
    """Keeps committed records in memory, per kind (for tests and small jobs)."""

    def __init__(self) -> None:
        self.lives: list[Live] = []
        #: Records of every complete unit, in the order the units completed.
        self.committed: dict[Unit, list[dict[str, Any]]] = {}
        self.failed: list[UnitResult] = []
        self.report: HarvestReport | None = None
        self._pending: dict[Unit, list[dict[str, Any]]] = defaultdict(list)

    async def live(self, live: Live) -> None:
        self.lives.append(live)

    async def write(self, batch: Batch) -> None:
        self._pending[batch.unit].extend(batch.records)

    async def unit_end(self, result: UnitResult) -> None:
        records = self._pending.pop(result.unit, [])
        if result.ok:
            self.committed[result.unit] = records
        else:
            self.failed.append(result)

    async def close(self, report: HarvestReport) -> None:
        self._pending.clear()
        self.report = report

    def records(self, kind: str) -> list[tuple[Live, dict[str, Any]]]:
        """Every committed record of ``kind`` with the live it belongs to."""
        return [
            (unit.live, record)
            for unit, records in self.committed.items()
            if unit.kind == kind
            for record in records
        ]
