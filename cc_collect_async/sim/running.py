"""A data set seen at a moment: lives still running, for incremental syncs to meet.

:class:`RunningDataset` is a :class:`~cc_collect_async.sim.data.Dataset` with a clock,
``now`` (naive Beijing time; None: every live has ended, as in the plain data set). At
``now``, a live that has not started yet does not exist; a live still running is listed
without an end time and has only the records made by then (an access record whose viewer
is still inside has no exit time yet). Move ``now`` forward between two syncs and the
same lives have ended, with all their records: what a nightly sync meets when a live runs
past midnight.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from .data import TIME_FORMAT, Dataset, DatasetSpec, LiveInfo, Record

__all__ = ["RunningDataset", "RunningLive"]

_BEIJING = timezone(timedelta(hours=8))
_EPOCH_BEIJING = datetime(1970, 1, 1, 8, 0, 0)


def _naive(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(_BEIJING).replace(tzinfo=None)


@attrs.frozen(kw_only=True)
class RunningLive(LiveInfo):
    """A live listed while it runs: ``end_time`` is empty on the wire."""

    def to_wire(self, userid: str) -> Record:
        record = super().to_wire(userid)
        record["end_time"] = ""
        return record


def _made_at(kind: str, record: Record) -> datetime:
    """When a record came to be."""
    if kind == "rollcall":
        return _EPOCH_BEIJING + timedelta(milliseconds=int(record["roll_call_id"]))
    if kind == "chat":
        text = record["timestamp"]
    elif kind == "access":
        text = record["enter_time"]
    elif kind == "reward":
        text = record["reward_time"]
    else:
        text = record["publish_data"]["publish_time"]
    return datetime.strptime(str(text).strip(), TIME_FORMAT)


class RunningDataset(Dataset):
    """The data set as it stood at ``now`` (settable between requests)."""

    def __init__(self, spec: DatasetSpec | None = None, *, now: datetime | None = None) -> None:
        super().__init__(spec)
        self.now = _naive(now)

    def set_now(self, now: datetime | None) -> None:
        self.now = _naive(now)

    def _as_seen(self, live: LiveInfo) -> LiveInfo | None:
        now = self.now
        if now is None or live.end_time <= now:
            return live
        if live.start_time > now:
            return None
        return RunningLive(**attrs.asdict(live, recurse=False))

    def lives(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        roomids: Collection[str] | None = None,
    ) -> list[LiveInfo]:
        seen = (self._as_seen(live) for live in super().lives(start, end, roomids))
        return [live for live in seen if live is not None]

    def live(self, liveid: str) -> LiveInfo | None:
        live = super().live(liveid)
        return None if live is None else self._as_seen(live)

    def room_lives(self, roomid: str) -> list[LiveInfo]:
        seen = (self._as_seen(live) for live in super().room_lives(roomid))
        return [live for live in seen if live is not None]

    def _running(self, liveid: str) -> bool:
        live = super().live(liveid)
        return self.now is not None and live is not None and live.end_time > self.now

    def records(self, liveid: str, kind: str) -> list[Record]:
        records = super().records(liveid, kind)
        now = self.now
        if now is None or not self._running(liveid):
            return records
        kept: list[Record] = []
        for record in records:
            made = _made_at(kind, record)
            if made > now:
                continue
            if kind == "access" and _left(record) > now:
                record = {**record, "exit_time": ""}
            kept.append(record)
        return kept

    def count(self, liveid: str, kind: str) -> int:
        if self._running(liveid):
            return len(self.records(liveid, kind))
        return super().count(liveid, kind)


def _left(record: dict[str, Any]) -> datetime:
    return datetime.strptime(str(record["exit_time"]).strip(), TIME_FORMAT)
