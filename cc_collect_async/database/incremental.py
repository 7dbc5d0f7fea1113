"""Which window an incremental sync lists, and where its watermark moves.

The rule: a sync without ``--since`` starts at the earliest of the watermarks of the kinds
it syncs (each the end of the last complete sync of that kind), the start of the oldest live
that still has a unit that was not final when fetched (its live was running, or had ended
less than the settle margin before), and the start of any run that did not complete and
that no later complete run of its kinds covered. It lists the window's lives (cheap), skips
their final units and fetches the rest whole. A kind's watermark moves to the window's end
(or now, when the window ends later: lives that had not started were not listed) only when
the run completes, and only when the window joined on to it (no gap left behind; a kind
never synced joins anywhere). A watermark per kind, not per account: a sync of other kinds must
not move the first kinds past lives it never fetched them for. ``refresh_days=N`` reaches
back N days and fetches those days' units again even when final.
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
    watermarks before and after."""

    window: Window | None
    since: datetime
    until: datetime
    #: Final units of lives that started before this are skipped; from here on (the
    #: ``refresh_days`` span) every unit is fetched again.
    skip_until: datetime
    #: The earliest watermark of the kinds synced (None: none of them synced before).
    watermark: datetime | None
    oldest_open: datetime | None
    #: Where the watermark of ``advance_kinds`` moves when the run completes; None: nowhere.
    advance_to: datetime | None
    advance_kinds: tuple[str, ...] = ()
    #: The earliest watermark of the kinds synced once the run has completed.
    watermark_after: datetime | None = None
    #: Where an earlier sync that did not complete started (None: none, or ``since`` given).
    unfinished_from: datetime | None = None


def plan_sync(
    state: SyncState,
    *,
    kinds: tuple[str, ...],
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    refresh_days: int = 0,
) -> SyncPlan:
    """The plan for one sync. Times naive are Beijing time; ``until`` defaults to ``now``
    (to the minute: the listing takes minutes)."""
    present = as_beijing(now).replace(second=0, microsecond=0)
    end = as_beijing(until) if until is not None else present
    marks = {kind: as_beijing(t) for kind, t in state.watermarks.items() if kind in kinds}
    watermark = min(marks.values(), default=None)
    if since is not None:
        start = as_beijing(since)
    else:
        known = [as_beijing(t) for t in (state.oldest_open, state.resume_from) if t is not None]
        known += [watermark] if watermark is not None else []
        if known:
            start = min(known)
        else:  # a first sync: yesterday and today so far, Beijing time
            start = end.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    skip_until = end
    if refresh_days > 0:
        skip_until = end - timedelta(days=refresh_days)
        start = min(start, skip_until)
    # Lives that start after now are not listed yet: a watermark past now would skip them.
    reached = min(end, present)
    advancing = tuple(kind for kind in kinds if kind not in marks or start <= marks[kind])
    after = {**marks, **{kind: max(marks.get(kind, reached), reached) for kind in advancing}}
    return SyncPlan(
        window=Window(start, end) if start < end else None,
        since=start,
        until=end,
        skip_until=skip_until,
        watermark=watermark,
        oldest_open=as_beijing(state.oldest_open) if state.oldest_open is not None else None,
        advance_to=reached if advancing else None,
        advance_kinds=advancing,
        watermark_after=min(after.values(), default=None),
        unfinished_from=(
            as_beijing(state.resume_from)
            if since is None and state.resume_from is not None
            else None
        ),
    )
