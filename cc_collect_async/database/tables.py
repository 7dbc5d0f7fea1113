"""The tables a sync keeps, described once as data, and how a wire record becomes a row.

One table per kind (``cc_chat``, ``cc_access``, ...): ``liveid`` and ``roomid`` of the live,
``record_key`` (the harvest's own natural key of the record, unique per live), the main
fields typed, and ``raw``, the record as received. Types are named abstractly here
(``text``, ``bigint``, ``timestamptz``, ...); each backend spells them in its own dialect.

Typing a field never fails a sync: a value that does not fit its column (a time that is not
a time, an id beyond 64 bits) is stored as NULL there, and ``raw`` still holds it. The
database types the fields itself (:mod:`.sql_typing`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

from ..beijing import BEIJING, parse_wire_time
from ..harvest.plan import KINDS
from ..json_codec import dumps

__all__ = [
    "ESCAPED_SURROGATE",
    "KIND_TABLES",
    "PREFIX",
    "Column",
    "ColumnType",
    "KindTable",
    "raw_json",
    "record_key_text",
    "replace_unstorable",
    "storable",
    "wire_time",
]

PREFIX = "cc_"

ColumnType = Literal["text", "bigint", "integer", "double", "timestamptz", "json", "boolean"]


# -- the times of lives and units ---------------------------------------------------------

_fromisoformat = datetime.fromisoformat


def wire_time(value: Any) -> datetime | None:
    """A vendor time (Beijing, maybe with a trailing space) as an aware datetime, else None:
    a live's start and end, which the sink reads (a record's times are typed in SQL).

    The vendor's one layout goes through ``datetime.fromisoformat`` (C, 6x faster than the
    general parser); anything else through :func:`~cc_collect_async.beijing.parse_wire_time`.
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


# -- the tables ---------------------------------------------------------------------------


@attrs.frozen
class Column:
    """One typed column of a kind's table: its name, type and where in the record it is.

    ``count=True`` stores the length of the list found there (replies to a vote)."""

    name: str
    type: ColumnType
    path: tuple[str, ...]
    count: bool = False


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
    its value (``"12345"`` for chat), several fields a JSON array (``["1", "viewer"]`` for
    rollcall), exactly as received."""
    if type(key) is str:
        return key
    if type(key) is int:
        return str(key)
    if isinstance(key, tuple):
        key = list(key)
    return dumps(key).decode()


# A lone surrogate can only reach a dump as its escape: every other character is written as
# UTF-8 (json_codec writes non-ASCII as is).
ESCAPED_SURROGATE = b"\\ud"


def _map_text(value: Any, text: Callable[[str], str]) -> Any:
    """``value`` (decoded JSON) with ``text`` applied to every string in it, keys included."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {_map_text(k, text): _map_text(v, text) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_text(v, text) for v in value]
    return value


def _without_surrogates(text: str) -> str:
    # A decoded str holds surrogates only unpaired (json joins a valid pair into one).
    return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


def _replace_surrogates(value: Any) -> Any:
    return _map_text(value, _without_surrogates)


def replace_unstorable(value: Any) -> Any:
    """``value`` with what no text column holds (a lone surrogate, NUL) made U+FFFD."""
    return _map_text(value, lambda text: _without_surrogates(text).replace("\x00", "\ufffd"))


def raw_json(value: Any) -> bytes:
    """A record's JSON text as a database can hold it.

    Neither DuckDB nor PostgreSQL stores a lone UTF-16 surrogate (valid JSON as an escape: a
    truncated emoji); such characters become U+FFFD. Everything else is kept as received.
    """
    data = dumps(value)
    if ESCAPED_SURROGATE in data:
        data = dumps(_replace_surrogates(value))
    return data


def storable(record: Mapping[str, Any], exact: bool = False) -> tuple[Mapping[str, Any], str]:
    """The record with lone surrogates replaced (for typed columns) and its JSON text:
    exact (escapes kept) when the database's JSON type takes them (PostgreSQL's json),
    else as :func:`raw_json` makes it (DuckDB)."""
    data = dumps(record)
    if ESCAPED_SURROGATE in data:
        record = _replace_surrogates(record)
        if not exact:
            data = dumps(record)
    return record, data.decode()
