"""The final account of a harvest: what was fetched, what failed, what looked wrong."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

__all__ = ["HarvestReport", "KindCounts", "UnitProblem"]


@attrs.define
class KindCounts:
    units: int = 0
    failed: int = 0
    pages: int = 0
    records: int = 0
    duplicates: int = 0


@attrs.frozen
class UnitProblem:
    """A unit that failed, or whose completeness check found something."""

    kind: str
    roomid: str
    liveid: str
    reason: str


@attrs.define
class HarvestReport:
    started_at: datetime
    kinds: dict[str, KindCounts]
    finished_at: datetime | None = None
    duration: float = 0.0
    lives: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    failures: list[UnitProblem] = attrs.field(factory=list)
    issues: list[UnitProblem] = attrs.field(factory=list)
    cancelled: bool = False
    #: Why the harvest stopped early (authentication rejected), if it did.
    fatal: str | None = None
    #: The live listing (or the list of lives) was walked to its end: no live is missing
    #: from ``lives`` unless a page of the listing failed (see :attr:`listing_complete`).
    lives_listed: bool = False

    @property
    def complete(self) -> bool:
        """Every unit fetched, nothing cancelled or failed."""
        return not self.failures and not self.cancelled and self.fatal is None

    @property
    def listing_complete(self) -> bool:
        """Every live of the request is known, so the units expected are all the units."""
        return self.lives_listed and not any(f.kind == "lives" for f in self.failures)

    @property
    def units(self) -> int:
        return sum(c.units for c in self.kinds.values())

    @property
    def records(self) -> int:
        return sum(c.records for c in self.kinds.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (times in ISO 8601)."""
        data = attrs.asdict(self, recurse=True)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        data["complete"] = self.complete
        data["listing_complete"] = self.listing_complete
        return data
