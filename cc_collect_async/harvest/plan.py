"""What a harvest fetches: lives, the kinds of records, and units of work (live x kind)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from ..endpoints import ENDPOINTS, Endpoint
from ..models import BEIJING

__all__ = [
    "ALL_KINDS",
    "DEFAULT_KINDS",
    "KINDS",
    "Kind",
    "Live",
    "Unit",
    "Window",
    "parse_kinds",
]


@attrs.frozen
class Live:
    """One live session to harvest. ``raw`` is its ``/collect/live/record`` item when it came
    from a window listing, or just its ids when it was named explicitly."""

    roomid: str
    liveid: str
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Live:
        return cls(str(record["roomid"]), str(record["liveid"]), record)

    def wire(self) -> Mapping[str, Any]:
        """The live as one output line: the listing's own fields, or at least its ids."""
        return self.raw or {"roomid": self.roomid, "liveid": self.liveid}


@attrs.frozen
class Unit:
    """One unit of work: every record of one kind for one live."""

    live: Live
    kind: str

    def __str__(self) -> str:
        return f"{self.kind} of live {self.live.liveid} (room {self.live.roomid})"


def _beijing(value: datetime) -> datetime:
    return value.astimezone(BEIJING) if value.tzinfo else value.replace(tzinfo=BEIJING)


def _rooms(rooms: Iterable[str]) -> tuple[str, ...]:
    # A typed converter: with a bare ``converter=tuple`` mypy rejects every argument.
    return tuple(rooms)


@attrs.frozen
class Window:
    """Lives that started in ``[since, until)`` (Beijing time), optionally only some rooms."""

    since: datetime = attrs.field(converter=_beijing)
    until: datetime = attrs.field(converter=_beijing)
    rooms: tuple[str, ...] = attrs.field(default=(), converter=_rooms)

    def __attrs_post_init__(self) -> None:
        if self.since >= self.until:
            raise ValueError(f"the window is empty: since {self.since} is not before {self.until}")


@attrs.frozen
class Kind:
    """A kind of record a harvest collects, and how one live's share of it is asked for."""

    name: str
    #: The endpoint that serves it; None for the composite per-live summary.
    endpoint: Endpoint | None
    #: Parameter names that carry the room and the live id (rollcall has no room).
    room_param: str | None = "roomid"
    live_param: str = "liveid"

    def params(self, live: Live) -> dict[str, object]:
        params: dict[str, object] = {self.live_param: live.liveid}
        if self.room_param:
            params[self.room_param] = live.roomid
        return params

    def record_key(self, record: Mapping[str, Any]) -> tuple[Any, ...]:
        if self.endpoint is None:
            return (record.get("liveid"),)
        return self.endpoint.record_key(record)

    def page_keys(self, records: Sequence[Mapping[str, Any]]) -> list[Hashable]:
        """Keys that tell a page's records apart (see :meth:`Endpoint.page_keys`)."""
        if self.endpoint is None:
            return [record.get("liveid") for record in records]
        return self.endpoint.page_keys(records)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("chat", ENDPOINTS["chat"]),
        Kind("access", ENDPOINTS["access"]),
        Kind("vote", ENDPOINTS["vote"]),
        Kind("answercard", ENDPOINTS["answercard"]),
        Kind("rollcall", ENDPOINTS["rollcall"], room_param=None, live_param="live_id"),
        Kind("brainstorm", ENDPOINTS["brainstorm"]),
        Kind("reward", ENDPOINTS["reward"]),
        Kind("summary", None),
    )
}
DEFAULT_KINDS: tuple[str, ...] = ("chat", "access", "vote", "answercard", "rollcall")
ALL_KINDS: tuple[str, ...] = tuple(KINDS)


def parse_kinds(kinds: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a list (or comma-separated string) of kind names, keeping order, no repeats."""
    names = [k.strip() for k in kinds.split(",")] if isinstance(kinds, str) else list(kinds)
    names = [n for n in names if n]
    unknown = [n for n in names if n not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    if not names:
        raise ValueError(f"no kinds given; choose from {', '.join(KINDS)}")
    return tuple(dict.fromkeys(names))
