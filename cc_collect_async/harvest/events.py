"""What a running harvest hands its consumer: lives, batches of records, unit results,
and progress snapshots."""

from __future__ import annotations

from typing import Any

import attrs

from .plan import KINDS, Live, Unit

__all__ = ["Batch", "Progress", "UnitResult"]


@attrs.frozen
class Batch:
    """One page of one unit, in wire form: records exactly as the server sent them.

    Batches of a unit arrive in page order; a unit's records are only final once its
    :class:`UnitResult` says ``ok`` (a unit that fails later must be discarded whole).
    """

    unit: Unit
    page: int
    records: list[dict[str, Any]]

    @property
    def kind(self) -> str:
        return self.unit.kind

    @property
    def live(self) -> Live:
        return self.unit.live

    def models(self) -> list[Any]:
        """The records as typed models (the summary kind stays in wire form)."""
        return KINDS[self.kind].models(self.records)


@attrs.frozen
class UnitResult:
    """How a unit ended. ``ok`` False: it failed for ``error`` and its batches are void."""

    unit: Unit
    ok: bool
    pages: int
    records: int
    requests: int = 0
    error: str | None = None
    #: Completeness findings: shortfalls, overruns, records repeated across pages.
    issues: tuple[str, ...] = ()
    duplicates: int = 0


@attrs.frozen
class Progress:
    """A snapshot for a progress display."""

    lives: int
    units_total: int
    units_done: int
    units_failed: int
    records: int
    requests: int
    retries: int
    rate_limited: int
    #: Requests per second over the last few seconds.
    request_rate: float
    elapsed: float
    #: All lives of the window are known, so ``units_total`` is final.
    planning_done: bool
    records_by_kind: dict[str, int] = attrs.field(factory=dict)
    units_done_by_kind: dict[str, int] = attrs.field(factory=dict)
    #: Units an earlier run completed, not fetched again (so far: counted as listed).
    units_skipped_by_kind: dict[str, int] = attrs.field(factory=dict)
    #: Seconds until the server's spent quota lets requests through again: per endpoint
    #: name, ``""`` for the whole account. Empty while nothing waits for the server.
    server_waits: dict[str, float] = attrs.field(factory=dict)
    #: Units to fetch, kind by kind (so far: counted as their lives are listed).
    units_total_by_kind: dict[str, int] = attrs.field(factory=dict)

    @property
    def units_skipped(self) -> int:
        """Units an earlier run completed, of every kind."""
        return sum(self.units_skipped_by_kind.values())

    @property
    def eta(self) -> float | None:
        """Seconds left, estimated from units finished so far; None until it means something.

        The kind that finishes last at its own pace so far, if that is later than all
        units at their common pace: an interface the server holds to a request a second
        sets the end of the run, while the other kinds' units finish early and made the
        common pace promise a quarter of the time. Never less than a wait for the server's
        quota still has to run (it said 0:02 through a minute's wait)."""
        if not self.planning_done or not self.units_done or self.units_total <= self.units_done:
            return None
        left = [self.elapsed / self.units_done * (self.units_total - self.units_done)]
        left += self.server_waits.values()
        for kind, total in self.units_total_by_kind.items():
            done = self.units_done_by_kind.get(kind, 0)
            if done and total > done:
                left.append(self.elapsed / done * (total - done))
        return max(left)
