"""Parquet output: the rows of a kind's JSON lines as one Parquet file (needs pyarrow).

The vendor's records are loosely typed: a field may be a number in one record and a string in
the next, and nested values (lists, objects) vary in shape. So each top-level field becomes a
column typed by what it actually holds across the whole kind: booleans, integers, floats
(integers mixed with floats too) or strings stay native; anything else (lists, objects, mixed
types, integers beyond 64 bits) is stored as JSON text, marked in the field's metadata so
:func:`read_parquet` can turn it back. A field missing from a record is null in that row.

Parquet strings must be valid UTF-8, which a lone UTF-16 surrogate (``"\\ud83d"``, half an
emoji) is not: a text column holding one is stored as JSON text too, where the surrogate is
its ``\\uXXXX`` escape, and reads back as the same string.

Files are written in two passes over the records (infer the schema, then write batches), so
memory holds one batch, not the whole kind.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

from ..json_codec import dumps, loads

__all__ = ["ParquetUnavailableError", "read_parquet", "require_pyarrow", "write_parquet"]

#: Field metadata key marking a column that holds JSON text.
ENCODING_KEY = b"cc_collect.encoding"
_JSON = b"json"
_BATCH_ROWS = 50_000
_INT64 = (-(2**63), 2**63 - 1)
_SURROGATE = re.compile("[\ud800-\udfff]").search
#: Columns every kind has (the sink adds them), so even an empty kind has a schema.
_ID_COLUMNS = ("liveid", "roomid")


class ParquetUnavailableError(ImportError):
    """pyarrow is not installed."""


def require_pyarrow() -> None:
    """Raise :class:`ParquetUnavailableError` with the install hint when pyarrow is missing."""
    if importlib.util.find_spec("pyarrow") is None:
        raise ParquetUnavailableError(
            "Parquet output needs pyarrow: pip install 'cc_collect_async[parquet]'"
        )


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if _INT64[0] <= value <= _INT64[1] else "json"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "json" if _SURROGATE(value) else "str"
    return "json"


def _column_kind(seen: set[str]) -> str:
    if not seen:
        return "str"  # only nulls
    if len(seen) == 1:
        return next(iter(seen))
    if seen == {"int", "float"}:
        return "float"
    return "json"


def _to_json_text(value: Any) -> str | None:
    # json_codec writes a lone surrogate as its escape: always valid UTF-8.
    return None if value is None else dumps(value).decode("utf-8")


def write_parquet(
    target: str | os.PathLike[str] | IO[bytes],
    records: Callable[[], Iterable[Mapping[str, Any]]],
) -> int:
    """Write the records ``records()`` yields (called twice: schema, then rows) to ``target``.

    Returns the number of rows written.
    """
    require_pyarrow()
    import pyarrow as pa
    import pyarrow.parquet as pq

    seen: dict[str, set[str]] = {}
    for record in records():
        for name, value in record.items():
            kinds = seen.setdefault(name, set())
            if value is not None:
                kinds.add(_kind_of(value))
    for name in _ID_COLUMNS:
        seen.setdefault(name, set())
    columns = {name: _column_kind(kinds) for name, kinds in seen.items()}
    arrow_types = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64()}
    fields = [
        pa.field(
            name,
            arrow_types.get(kind, pa.string()),
            metadata={ENCODING_KEY: _JSON} if kind == "json" else None,
        )
        for name, kind in columns.items()
    ]
    schema = pa.schema(fields)

    def convert(name: str, value: Any) -> Any:
        kind = columns[name]
        if value is None:
            return None
        if kind == "json":
            return _to_json_text(value)
        if kind == "float":
            return float(value)
        return value

    rows = 0
    where = os.fspath(target) if isinstance(target, (str, os.PathLike)) else target
    with pq.ParquetWriter(where, schema) as writer:
        batch: dict[str, list[Any]] = {name: [] for name in columns}
        size = 0

        def flush() -> None:
            nonlocal size
            if size:
                writer.write_table(pa.table(batch, schema=schema))
                for values in batch.values():
                    values.clear()
                size = 0

        for record in records():
            for name, values in batch.items():
                values.append(convert(name, record.get(name)))
            size += 1
            rows += 1
            if size >= _BATCH_ROWS:
                flush()
        flush()
        if not rows:
            writer.write_table(schema.empty_table())
    return rows


def read_parquet(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a file written by :func:`write_parquet`, JSON text columns decoded.

    A field absent from the original record comes back as None.
    """
    require_pyarrow()
    import pyarrow.parquet as pq

    table = pq.read_table(str(path))
    json_columns = [
        field.name
        for field in table.schema
        if field.metadata and field.metadata.get(ENCODING_KEY) == _JSON
    ]
    rows: list[dict[str, Any]] = table.to_pylist()
    for row in rows:
        for name in json_columns:
            if row[name] is not None:
                row[name] = loads(row[name])
    return rows
