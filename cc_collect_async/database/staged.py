"""Pages of wire records as staged rows: the bytes both backends bulk-load and type in SQL.

A staged row is a record's ids, its natural key and its JSON text, fields separated by
U+001F and ended by a newline (JSON text never holds either raw: control characters are
escaped in strings). The event loop makes them page by page, a ``join`` of byte strings per
page; the database thread only hands them to the database, which parses each record once and
types its fields in C (DuckDB's ``json_transform``, PostgreSQL's ``jsonb``). Typed in Python
instead, a sync into PostgreSQL spent over a quarter of its process's CPU (1.9 of 6.9 s for
185,765 records) picking fields out of records in the database thread, holding the GIL the
event loop needs.

PostgreSQL keeps ``raw`` exactly as received (its ``json`` takes a lone surrogate's escape
and ``\\u0000``), but it cannot parse either into text: a record holding one gets a fifth
field, its JSON with those characters replaced by U+FFFD, which its typed columns are read
from. Every other row leaves that field empty.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

from ..json_codec import dumps
from .tables import ESCAPED_SURROGATE, raw_json, record_key_text, replace_unstorable

__all__ = ["SEPARATOR", "in_parts", "staged_lines"]

#: Between the fields of a staged row.
SEPARATOR = b"\x1f"

# Escapes PostgreSQL's jsonb refuses (and ``->>`` cannot turn into text): NUL and a lone
# surrogate (json_codec writes every other character as is). A backslash before "ud" or
# "u0000" in the text itself also matches: its typing copy is then the same text.
_ESCAPED_NUL = b"\\u0000"


#: The bytes of C0 control characters: JSON text holds none raw.
_CONTROL = bytes(range(0x20))


def _plain(text: str) -> bytes:
    """An id or key as one staged field: JSON-quoted in the rare case it holds a control
    character (a separator, PostgreSQL's quote character U+0001, NUL, which PostgreSQL's
    text cannot hold) or a lone surrogate."""
    try:
        data = text.encode()
    except UnicodeEncodeError:
        return raw_json(text)
    if data.translate(None, _CONTROL) != data:
        return raw_json(text)
    return data


def _typing_copy(data: bytes, record: Any) -> bytes:
    """The fifth field of a PostgreSQL row: empty, or the record with what its text types
    cannot hold replaced."""
    if _ESCAPED_NUL in data or ESCAPED_SURROGATE in data:
        return SEPARATOR + dumps(replace_unstorable(record))
    return SEPARATOR


def staged_lines(
    liveid: str,
    roomid: str,
    records: Sequence[Any],
    key_of: Callable[[Sequence[Any]], list[Hashable]],
    *,
    exact: bool = False,
) -> bytes:
    """One page as staged rows: ids, natural key and the record's JSON text; ``exact``
    (PostgreSQL) keeps that text as received and adds the typing copy field."""
    head = _plain(liveid) + SEPARATOR + _plain(roomid) + SEPARATOR
    keys = key_of(records)
    if exact:
        texts = [(data := dumps(record)) + _typing_copy(data, record) for record in records]
    else:
        texts = [raw_json(record) for record in records]
    return b"".join(
        [
            head + _plain(record_key_text(key)) + SEPARATOR + text + b"\n"
            for key, text in zip(keys, texts, strict=True)
        ]
    )


def in_parts(batches: list[bytes], limit: int) -> Iterator[list[memoryview]]:
    """``batches`` in runs of about ``limit`` bytes, cut between rows: one page can be a
    whole live's chat, every record of it (an endpoint without pages)."""
    part: list[memoryview] = []
    size = 0
    for batch in batches:
        view, start = memoryview(batch), 0
        while start < len(batch):
            room = max(limit - size, 1)
            end = len(batch)
            if end - start > room:
                end = batch.rfind(b"\n", start, start + room) + 1
                if end <= start:  # the room ends inside the first row: take that row
                    end = batch.find(b"\n", start + room) + 1 or len(batch)
            part.append(view[start:end])
            size += end - start
            start = end
            if size >= limit:
                yield part
                part, size = [], 0
    if part:
        yield part
