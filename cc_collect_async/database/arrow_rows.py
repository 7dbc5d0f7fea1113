"""Pages of wire records as an Arrow record batch of their kind's table.

Typing a million records one value at a time in Python cost more than fetching them. So
the records are typed with a few list comprehensions and Arrow's vectorised kernels (times
are trimmed, parsed and moved from Beijing time to UTC by Arrow), a whole group of units
at a time in the database thread: each compute call costs microseconds whatever its
length, and typed page by page in the event loop they cost that loop a third of its CPU.
The event loop only pairs each page with its keys (:func:`keyed_page`).

A column whose values do not all fit its type (an id beyond 64 bits, a number sent as
text, a time in another layout) falls back to the per-value converters of :mod:`.tables`,
so one odd record never fails a page.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from functools import cache
from typing import Any

import attrs

from ..json_codec import dumps
from .tables import (
    CONVERTERS,
    LEAD,
    RAW,
    Column,
    ColumnType,
    KindTable,
    clean_text,
    record_key_text,
    wire_time,
)

__all__ = [
    "KeyedPage",
    "arrow_schema",
    "arrow_type",
    "keyed_page",
    "rows_batch",
    "table_of",
]

#: Beijing is UTC+8 all year (no daylight saving), in microseconds.
_BEIJING_OFFSET_US = 8 * 3600 * 1_000_000
_SECOND_LAYOUT = "%Y-%m-%d %H:%M:%S"


@cache
def _arrow() -> tuple[Any, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa, pc


@cache
def _int64(value: int) -> Any:
    """``value`` as an Arrow scalar: a plain int passed to a compute function is converted
    anew on every call, and that conversion tries (and fails) to import dateutil each time,
    which cost a sync into PostgreSQL a third of its event loop's CPU."""
    pa, _ = _arrow()
    return pa.scalar(value, pa.int64())


def arrow_type(type_: ColumnType) -> Any:
    pa, _ = _arrow()
    return {
        "text": pa.string(),
        "bigint": pa.int64(),
        "integer": pa.int32(),
        "double": pa.float64(),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "json": pa.string(),
        "boolean": pa.bool_(),
    }[type_]


@cache
def arrow_schema(columns: tuple[tuple[str, ColumnType], ...]) -> Any:
    pa, _ = _arrow()
    return pa.schema([(name, arrow_type(type_)) for name, type_ in columns])


def table_of(table: KindTable) -> Any:
    """The Arrow schema of a kind's table."""
    return arrow_schema(tuple((c.name, c.type) for c in table.columns))


# -- values out of records ----------------------------------------------------------------


def _field(records: Sequence[Mapping[str, Any]], path: tuple[str, ...]) -> list[Any]:
    if len(path) == 1:
        (name,) = path
        try:
            return [record.get(name) for record in records]
        except AttributeError:  # not all mappings
            return [r.get(name) if isinstance(r, Mapping) else None for r in records]
    outer, inner = path
    holders = _field(records, (outer,))
    return [h.get(inner) if type(h) is dict or isinstance(h, Mapping) else None for h in holders]


def _times(values: list[Any]) -> Any:
    """Vendor times to UTC timestamps: Arrow trims, parses the vendor's one layout and
    shifts by 8 hours; anything else (a date alone, an impossible date) goes through
    :func:`~.tables.wire_time` in Python."""
    pa, pc = _arrow()
    try:
        text = pa.array(values, pa.string())
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):
        return pa.array([wire_time(v) for v in values], arrow_type("timestamptz"))
    trimmed = pc.utf8_rtrim_whitespace(text)
    parsed = pc.strptime(trimmed, format=_SECOND_LAYOUT, unit="us", error_is_null=True)
    missed = pc.and_kleene(pc.is_null(parsed), pc.greater(pc.utf8_length(trimmed), _int64(0)))
    if pc.any(missed).as_py():
        return pa.array([wire_time(v) for v in values], arrow_type("timestamptz"))
    shifted = pc.subtract(parsed.cast(pa.int64()), _int64(_BEIJING_OFFSET_US))
    return shifted.cast(arrow_type("timestamptz"))


def _typed(type_: ColumnType, values: list[Any]) -> Any:
    pa, _ = _arrow()
    if type_ == "timestamptz":
        return _times(values)
    arrow = arrow_type(type_)
    if type_ == "json":
        # PostgreSQL's json keeps a lone surrogate's escape and \u0000 exactly (jsonb would
        # not): the text json_codec wrote is ASCII there, so always valid UTF-8.
        return pa.array([None if v is None else dumps(v) for v in values], arrow)
    try:
        if type_ in ("bigint", "integer") and any(type(v) is bool for v in values):
            raise TypeError("booleans are not numbers here")
        return pa.array(values, arrow)
    except (pa.ArrowException, TypeError, ValueError, UnicodeError, OverflowError):
        convert = clean_text if type_ == "text" else CONVERTERS[type_]
        return pa.array([convert(v) for v in values], arrow)


def _column(column: Column, records: Sequence[Mapping[str, Any]]) -> Any:
    values = _field(records, column.path)
    if column.count:
        pa, _ = _arrow()
        return pa.array([len(v) if type(v) is list else None for v in values], pa.int32())
    return _typed(column.type, values)


@attrs.frozen
class KeyedPage:
    """One page of a unit as received, with its records' key texts: what the event loop
    hands the database thread, which types the pages of a group in one go."""

    liveid: str
    roomid: str
    records: Sequence[Mapping[str, Any]]
    keys: list[str]


def keyed_page(
    liveid: str,
    roomid: str,
    records: Sequence[Mapping[str, Any]],
    key_of: Callable[[Sequence[Mapping[str, Any]]], list[Hashable]],
) -> KeyedPage:
    """``records`` with their natural keys (``key_of``: the harvest's ``Kind.page_keys``)."""
    return KeyedPage(liveid, roomid, records, [record_key_text(key) for key in key_of(records)])


def rows_batch(table: KindTable, pages: Sequence[KeyedPage]) -> Any:
    """Pages of ``table``'s kind as one Arrow record batch in the table's column order.

    Typed a group at a time, not a page at a time: each compute call costs some
    microseconds whatever its length, and pages hold a few dozen records."""
    pa, _ = _arrow()
    liveids: list[str] = []
    roomids: list[str] = []
    keys: list[str] = []
    records: list[Mapping[str, Any]] = []
    for page in pages:
        count = len(page.records)
        liveids += [page.liveid] * count
        roomids += [page.roomid] * count
        keys += page.keys
        records += page.records
    arrays = [
        _typed("text", liveids),
        _typed("text", roomids),
        _typed("text", keys),
        *(_column(column, records) for column in table.typed),
        pa.array([dumps(record) for record in records], pa.string()),
    ]
    assert len(arrays) == len(LEAD) + len(table.typed) + 1 and RAW.name == "raw"
    return pa.RecordBatch.from_arrays(arrays, schema=table_of(table))
