"""Which window an incremental sync lists, and where its watermark moves.

The rule: a sync without ``--since`` starts at the earliest of the account's watermark (the
end of the last complete sync), the start of the oldest live that still has a unit that
was not final when fetched (its live was running, or had ended less than the settle margin
before), and the start of any run since the last complete one that did not complete. It
lists the window's lives (cheap), skips their final units and fetches the rest whole. The
watermark moves to the window's end only when the run completes, and only when the window
joined on to it (no gap left behind). ``refresh_days=N`` reaches back N days and fetches
those days' units again even when final.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from ..beijing import as_beijing
from ..harvest.plan import Window
from .backend import SyncState

__all__ = ["SyncPlan", "plan_sync"]


@attrs.frozen
class SyncPlan:
    """The window to list (None: nothing to do), where skipping final units stops, and the
    watermark before and after."""

    window: Window | None
    since: datetime
    until: datetime
    #: Final units of lives that started before this are skipped; from here on (the
    #: ``refresh_days`` span) every unit is fetched again.
    skip_until: datetime
    watermark: datetime | None
    oldest_open: datetime | None
    #: Where the watermark moves when the run completes; None leaves it.
    advance_to: datetime | None


def plan_sync(
    state: SyncState,
    *,
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    refresh_days: int = 0,
) -> SyncPlan:
    """The plan for one sync. Times naive are Beijing time; ``until`` defaults to ``now``
    (to the minute: the listing takes minutes)."""
    end = (
        as_beijing(until) if until is not None else as_beijing(now).replace(second=0, microsecond=0)
    )
    if since is not None:
        start = as_beijing(since)
    else:
        marks = (state.watermark, state.oldest_open, state.resume_from)
        known = [as_beijing(t) for t in marks if t is not None]
        if known:
            start = min(known)
        else:  # a first sync: yesterday and today so far, Beijing time
            start = end.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    skip_until = end
    if refresh_days > 0:
        skip_until = end - timedelta(days=refresh_days)
        start = min(start, skip_until)
    watermark = as_beijing(state.watermark) if state.watermark is not None else None
    joined = watermark is None or start <= watermark
    return SyncPlan(
        window=Window(start, end) if start < end else None,
        since=start,
        until=end,
        skip_until=skip_until,
        watermark=watermark,
        oldest_open=as_beijing(state.oldest_open) if state.oldest_open is not None else None,
        advance_to=end if joined else None,
    )
