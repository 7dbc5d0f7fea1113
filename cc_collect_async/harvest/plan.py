"""What a harvest fetches: lives, the kinds of records, and units of work (live x kind)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from ..beijing import as_beijing
from ..converter import structure
from ..endpoints import ENDPOINTS, Endpoint

__all__ = [
    "ALL_KINDS",
    "DEFAULT_KINDS",
    "KINDS",
    "EndpointKind",
    "Kind",
    "Live",
    "SummaryKind",
    "SummaryPart",
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


def _rooms(rooms: Iterable[str]) -> tuple[str, ...]:
    # A typed converter: with a bare ``converter=tuple`` mypy rejects every argument.
    return tuple(rooms)


@attrs.frozen
class Window:
    """Lives that started in ``[since, until)`` (Beijing time), optionally only some rooms."""

    since: datetime = attrs.field(converter=as_beijing)
    until: datetime = attrs.field(converter=as_beijing)
    rooms: tuple[str, ...] = attrs.field(default=(), converter=_rooms)

    def __attrs_post_init__(self) -> None:
        if self.since >= self.until:
            raise ValueError(f"the window is empty: since {self.since} is not before {self.until}")


@attrs.frozen
class Kind:
    """A kind of record a harvest collects. Two strategies fetch one live's share of it:
    :class:`EndpointKind` (the records of one endpoint, paged or not) and
    :class:`SummaryKind` (one record per live, composed of several calls)."""

    name: str

    def page_keys(self, records: Sequence[Mapping[str, Any]]) -> list[Hashable]:
        """Keys that tell a page's records apart, so a record repeated across pages is
        delivered once."""
        raise NotImplementedError

    def models(self, records: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The records as typed objects."""
        raise NotImplementedError


@attrs.frozen
class EndpointKind(Kind):
    """The records one endpoint serves for a live."""

    endpoint: Endpoint
    #: Parameter names that carry the room and the live id (rollcall has no room).
    room_param: str | None = "roomid"
    live_param: str = "liveid"

    def params(self, live: Live) -> dict[str, object]:
        params: dict[str, object] = {self.live_param: live.liveid}
        if self.room_param:
            params[self.room_param] = live.roomid
        return params

    def page_keys(self, records: Sequence[Mapping[str, Any]]) -> list[Hashable]:
        """See :meth:`Endpoint.page_keys`."""
        return self.endpoint.page_keys(records)

    def models(self, records: Sequence[Mapping[str, Any]]) -> list[Any]:
        return [structure(record, self.endpoint.model) for record in records]


@attrs.frozen
class SummaryPart:
    """One call of the summary: its reply's ``data`` becomes the record's ``field``."""

    field: str
    endpoint: str
    #: The endpoint also takes the room id.
    with_room: bool = False

    def params(self, live: Live) -> dict[str, str]:
        if self.with_room:
            return {"roomid": live.roomid, "liveid": live.liveid}
        return {"liveid": live.liveid}


@attrs.frozen
class SummaryKind(Kind):
    """One record per live: its ids and the replies of the per-live statistics endpoints
    (duration, user count, peak viewers, gather), kept in wire form."""

    parts: tuple[SummaryPart, ...] = (
        SummaryPart("duration", "duration"),
        SummaryPart("user_count", "user_count"),
        SummaryPart("max_parallel", "max_parallel"),
        SummaryPart("gather", "summary", with_room=True),
    )

    def record(self, live: Live, data: Mapping[str, Any]) -> dict[str, Any]:
        """The summary record of ``live`` from each part's reply data (by field)."""
        return {"roomid": live.roomid, "liveid": live.liveid, **data}

    def page_keys(self, records: Sequence[Mapping[str, Any]]) -> list[Hashable]:
        return [record.get("liveid") for record in records]

    def models(self, records: Sequence[Mapping[str, Any]]) -> list[Any]:
        return [dict(record) for record in records]  # no model: a composite of replies


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        EndpointKind("chat", ENDPOINTS["chat"]),
        EndpointKind("access", ENDPOINTS["access"]),
        EndpointKind("vote", ENDPOINTS["vote"]),
        EndpointKind("answercard", ENDPOINTS["answercard"]),
        EndpointKind("rollcall", ENDPOINTS["rollcall"], room_param=None, live_param="live_id"),
        EndpointKind("brainstorm", ENDPOINTS["brainstorm"]),
        EndpointKind("reward", ENDPOINTS["reward"]),
        SummaryKind("summary"),
    )
}
DEFAULT_KINDS: tuple[str, ...] = ("chat", "access", "vote", "answercard", "rollcall")
ALL_KINDS: tuple[str, ...] = tuple(KINDS)


def parse_kinds(kinds: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a list (or comma-separated string) of kind names, keeping order, no repeats;
    ``"all"`` is every kind."""
    if isinstance(kinds, str) and kinds.strip() == "all":
        return ALL_KINDS
    names = [k.strip() for k in kinds.split(",")] if isinstance(kinds, str) else list(kinds)
    names = [n for n in names if n]
    unknown = [n for n in names if n not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    if not names:
        raise ValueError(f"no kinds given; choose from {', '.join(KINDS)}")
    return tuple(dict.fromkeys(names))
