"""Records as JSON lines: how a harvest writes a record, and how a file is read back.

A record is written through :mod:`cc_collect_async.json_codec`, so its values survive
exactly (integers of any size, lone surrogates as ``\\uXXXX`` escapes, line separators
escaped so every tool sees one record per line), tagged with the live it belongs to.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..json_codec import dumps_line, loads
from .plan import Live

__all__ = ["NotARecordError", "read_jsonl", "record_lines"]


class NotARecordError(ValueError):
    """An item of a data array is not a JSON object, so it cannot be a row."""


def record_lines(records: Iterable[object], live: Live) -> tuple[bytes, int]:
    """The JSON lines of ``records`` and how many there are.

    Each record gets the ``liveid`` and ``roomid`` of ``live`` where it lacks them; a field
    the vendor sent is never overwritten, and the caller's dicts are not modified. Raises
    :class:`NotARecordError` for an item that is not an object (a row needs field names).
    """
    lines = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise NotARecordError(
                f"item {index + 1} of the data array is {type(record).__name__}, not an object"
            )
        if "liveid" not in record or "roomid" not in record:
            record = {**record}
            record.setdefault("liveid", live.liveid)
            record.setdefault("roomid", live.roomid)
        lines.append(dumps_line(record))
    return b"".join(lines), len(lines)


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a JSON lines file, one dict per line."""
    with open(path, "rb") as file:
        for line in file:
            if line.strip():
                yield loads(line)
