"""The tables a sync keeps, described once as data, and how a wire record becomes a row.

One table per kind (``cc_chat``, ``cc_access``, ...): ``liveid`` and ``roomid`` of the live,
``record_key`` (the harvest's own natural key of the record, unique per live), the main
fields typed, and ``raw``, the record as received. Types are named abstractly here
(``text``, ``bigint``, ``timestamptz``, ...); each backend spells them in its own dialect.

Typing a field never fails a sync: a value that does not fit its column (a time that is not
a time, an id beyond 64 bits) is stored as NULL there, and ``raw`` still holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import attrs

from ..beijing import BEIJING, parse_wire_time
from ..harvest.plan import KINDS
from ..json_codec import dumps

__all__ = [
    "KIND_TABLES",
    "PREFIX",
    "Column",
    "ColumnType",
    "KindTable",
    "RowBuffer",
    "record_key_text",
    "storable",
    "wire_time",
]

PREFIX = "cc_"

ColumnType = Literal["text", "bigint", "integer", "double", "timestamptz", "json", "boolean"]


# -- typing one value ---------------------------------------------------------------------

_fromisoformat = datetime.fromisoformat
_INT64 = 1 << 63
_INT32 = 1 << 31


def wire_time(value: Any) -> datetime | None:
    """A vendor time (Beijing, maybe with a trailing space) as an aware datetime, else None.

    The vendor's one layout goes through ``datetime.fromisoformat`` (C, 6x faster than the
    general parser: a sync types a million of these); anything else through
    :func:`~cc_collect_async.beijing.parse_wire_time`.
    """
    if type(value) is str:
        text = value.rstrip()
        if len(text) == 19 and text[10] == " ":
            try:
                return _fromisoformat(text).replace(tzinfo=BEIJING)
            except ValueError:
                return None
    try:
        return parse_wire_time(value)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return dumps(value).decode()


def _whole(bound: int) -> Callable[[Any], int | None]:
    def convert(value: Any) -> int | None:
        if type(value) is not int:
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            else:
                return None
        return value if -bound <= value < bound else None

    return convert


def _double(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _json(value: Any) -> str | None:
    return None if value is None else dumps(value).decode()


def _count(value: Any) -> int | None:
    return len(value) if isinstance(value, list) else None


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "bigint": _whole(_INT64),
    "integer": _whole(_INT32),
    "double": _double,
    "timestamptz": wire_time,
    "json": _json,
}


# -- the tables ---------------------------------------------------------------------------


@attrs.frozen
class Column:
    """One typed column of a kind's table: its name, type and where in the record it is.

    ``count=True`` stores the length of the list found there (replies to a vote)."""

    name: str
    type: ColumnType
    path: tuple[str, ...]
    count: bool = False

    def extractor(self) -> Callable[[Mapping[str, Any]], Any]:
        convert = _count if self.count else _CONVERTERS[self.type]
        if len(self.path) == 1:
            (field,) = self.path

            def one(record: Mapping[str, Any]) -> Any:
                return convert(record.get(field))

            return one
        outer, inner = self.path

        def nested(record: Mapping[str, Any]) -> Any:
            value = record.get(outer)
            return convert(value.get(inner) if isinstance(value, Mapping) else None)

        return nested


def _c(name: str, type_: ColumnType = "text", path: str | None = None) -> Column:
    return Column(name, type_, tuple((path or name).split(".")))


def _replies(path: str = "reply_data") -> Column:
    return Column("replies", "integer", (path,), count=True)


#: The typed columns of each kind, in table order (after liveid, roomid, record_key).
_TYPED: dict[str, tuple[Column, ...]] = {
    "chat": (
        _c("id", "bigint"),
        _c("timestamp", "timestamptz"),
        _c("username"),
        _c("content"),
        _c("chat_userid"),
    ),
    "access": (
        _c("viewerid"),
        _c("username"),
        _c("role"),
        _c("ip"),
        _c("platform"),
        _c("enter_time", "timestamptz"),
        _c("exit_time", "timestamptz"),
    ),
    "vote": (
        _c("vote_id", path="publish_data.vote_id"),
        _c("title", path="publish_data.title"),
        _c("style", "integer", "publish_data.style"),
        _c("choices", "json", "publish_data.choices"),
        _c("publish_time", "timestamptz", "publish_data.publish_time"),
        _c("uid", path="publish_data.uid"),
        _c("uname", path="publish_data.uname"),
        _replies(),
    ),
    "answercard": (
        _c("qvote_id", path="publish_data.qvote_id"),
        _c("style", "integer", "publish_data.style"),
        _c("count", "integer", "publish_data.count"),
        _c("correct", "json", "publish_data.correct"),
        _c("publish_time", "timestamptz", "publish_data.publish_time"),
        _c("uid", path="publish_data.uid"),
        _replies(),
    ),
    "brainstorm": (
        _c("brainsstom_id", path="publish_data.brainsstom_id"),
        _c("title", path="publish_data.title"),
        _c("content", path="publish_data.content"),
        _c("publish_time", "timestamptz", "publish_data.publish_time"),
        _c("uid", path="publish_data.uid"),
        _c("uname", path="publish_data.uname"),
        _replies(),
    ),
    "reward": (
        _c("reward_time", "timestamptz"),
        _c("type"),
        _c("uid"),
        _c("uname"),
    ),
    "rollcall": (
        _c("roll_call_id"),
        _c("user_id"),
        _c("user_name"),
        _c("roll_call_status", "integer"),
        _c("confirm_time", "timestamptz"),
    ),
    "summary": (
        _c("duration", "double", "duration.duration"),
        _c("start_time", "timestamptz", "duration.start_time"),
        _c("end_time", "timestamptz", "duration.end_time"),
        _c("livecount", "integer", "user_count.livecount"),
        _c("usercount", "integer", "gather.usercount"),
        _c("max_parallel", "integer", "max_parallel.max_parallel"),
        _c("max_parallel_time", "timestamptz", "max_parallel.time"),
    ),
}

#: Columns every kind's table starts with (``liveid``, ``roomid``, ``record_key``) and ends
#: with (``raw``).
LEAD: tuple[Column, ...] = (
    Column("liveid", "text", ()),
    Column("roomid", "text", ()),
    Column("record_key", "text", ()),
)
RAW = Column("raw", "json", ())


@attrs.frozen
class KindTable:
    """The table of one kind: its name and columns, and the row maker for its records."""

    kind: str
    name: str
    typed: tuple[Column, ...]

    @property
    def columns(self) -> tuple[Column, ...]:
        return (*LEAD, *self.typed, RAW)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


KIND_TABLES: dict[str, KindTable] = {
    kind: KindTable(kind, f"{PREFIX}{kind}", _TYPED[kind]) for kind in KINDS
}


# -- keys and raw text --------------------------------------------------------------------


def record_key_text(key: Any) -> str:
    """The ``record_key`` column: the harvest's natural key as text. A one-field key is
    its value (``"12345"`` for chat), several fields a JSON array
    (``["viewer", "2026-11-01 10:00:00 "]`` for access), exactly as received."""
    if type(key) is str:
        return key
    if isinstance(key, tuple):
        key = list(key)
    return dumps(key).decode()


# A lone surrogate can only reach a dump as its escape: every other character is written as
# UTF-8 (json_codec writes non-ASCII as is).
_ESCAPED_SURROGATE = b"\\ud"


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        # A decoded str holds surrogates only unpaired (json joins a valid pair into one).
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value)
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    return value


def storable(record: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    """The record and its JSON text, as a database can hold them.

    Neither DuckDB nor PostgreSQL stores a lone UTF-16 surrogate (valid JSON as an escape: a
    truncated emoji); such characters become U+FFFD. Everything else is kept as received.
    """
    data = dumps(record)
    if _ESCAPED_SURROGATE in data:
        record = _replace_surrogates(record)
        data = dumps(record)
    return record, data.decode()


# -- rows of one kind, column by column ---------------------------------------------------


class RowBuffer:
    """Rows of one kind's table kept column by column (what Arrow and COPY want), for one
    unit or for a whole group of units."""

    __slots__ = ("columns", "table")

    def __init__(self, table: KindTable) -> None:
        self.table = table
        self.columns: list[list[Any]] = [[] for _ in table.columns]

    def __len__(self) -> int:
        return len(self.columns[0])

    def extend(self, other: RowBuffer) -> None:
        for mine, theirs in zip(self.columns, other.columns, strict=True):
            mine.extend(theirs)

    def rows(self) -> Iterable[tuple[Any, ...]]:
        return zip(*self.columns, strict=True)


def row_maker(
    table: KindTable, key_of: Callable[[Sequence[Mapping[str, Any]]], list[Any]]
) -> Callable[[RowBuffer, str, str, list[dict[str, Any]]], None]:
    """A function that appends a page of wire records of ``table``'s kind to a buffer.

    ``key_of`` gives the page's natural keys (the harvest's ``Kind.page_keys``); the
    extractors are built once per kind, not per record.
    """
    extractors = [column.extractor() for column in table.typed]
    positions = range(3, 3 + len(extractors))

    def append(buffer: RowBuffer, liveid: str, roomid: str, records: list[dict[str, Any]]) -> None:
        columns = buffer.columns
        count = len(records)
        columns[0].extend([liveid] * count)
        columns[1].extend([roomid] * count)
        columns[2].extend(map(record_key_text, key_of(records)))
        raws = columns[-1]
        for record in records:
            kept, raw = storable(record)
            raws.append(raw)
            for position, extract in zip(positions, extractors, strict=True):
                columns[position].append(extract(kept))

    return append
