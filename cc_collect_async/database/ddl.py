"""The schema a sync creates, in each backend's dialect: tables, keys and views.

Every name is prefixed (``cc_``) and schema-qualified, and every identifier is quoted, so a
sync never depends on a search path and never collides with a user's own tables. The schema
carries its version in ``cc_meta``; a version newer than :data:`SCHEMA_VERSION` is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .sql_typing import duckdb_time, duckdb_trimmed, postgres_time, postgres_trimmed
from .tables import KIND_TABLES, PREFIX, ColumnType

__all__ = [
    "COLUMNS",
    "COLUMN_TYPES",
    "HISTORY",
    "LIVES",
    "META",
    "RUNS",
    "SCHEMA_VERSION",
    "UNITS",
    "WATERMARKS",
    "SqlDialect",
    "quote",
]

#: Bump when a table or view changes; an older schema is then brought up to date (every
#: statement is ``IF NOT EXISTS`` or ``OR REPLACE``), a newer one refused.
#: 2: the reply views type times as the tables do (an impossible date is NULL: in
#: PostgreSQL it failed the query).
#: 3: DuckDB's ``cc_lives`` and ``cc_units`` without a primary key (see
#: :attr:`SqlDialect.index_history`); a DuckDB file of version 2 has them rebuilt.
#: 4: a watermark per (account, kind): one per account let a sync of other kinds move it
#: past lives whose units of the first kinds were never fetched. An account's watermark
#: of version 3 is carried to each kind it has units of.
#: 5: PostgreSQL's reply views read a record holding NUL or a lone surrogate (every query of
#: the view failed: its ``json`` cannot turn them into text); a watermark past the start of
#: its run (``--until`` in the future) goes back to that start.
SCHEMA_VERSION = 5

#: In a record's JSON text with its escaped backslashes set aside, the escapes PostgreSQL's
#: text cannot hold: NUL and a high surrogate that no low one follows; then a low surrogate
#: that no high one precedes. A pair is a character.
_PG_NUL_OR_LONE_HIGH = r"\\u(0000|d[89ab][0-9a-f]{2}(?!\\ud[c-f][0-9a-f]{2}))"
_PG_LONE_LOW = r"(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}"


def _postgres_readable(raw: str) -> str:
    """``raw`` (a ``json`` column) with NUL and lone surrogates as U+FFFD, as the typed
    columns have them; a record without such an escape (nearly all) is taken as it is.

    Each escaped backslash (two backslashes) is set aside first as U+0001, which JSON text
    never holds raw, so that every backslash-u left is an escape, not a backslash's text."""
    text = f"replace({raw}::text, '\\\\', chr(1))"
    for pattern in (_PG_NUL_OR_LONE_HIGH, _PG_LONE_LOW):
        text = f"regexp_replace({text}, '{pattern}', '\\\\ufffd', 'gi')"
    text = f"replace({text}, chr(1), '\\\\')"
    suspect = f"{raw}::text ~* '\\\\u(0000|d[89a-f])'"
    return f"(CASE WHEN {suspect} THEN ({text})::json ELSE {raw} END)"


META = f"{PREFIX}meta"
LIVES = f"{PREFIX}lives"
UNITS = f"{PREFIX}units"
RUNS = f"{PREFIX}runs"
WATERMARKS = f"{PREFIX}watermarks"


def quote(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


#: (column, type) of the bookkeeping tables; the first column(s) named in _KEYS are the key.
_FIXED: dict[str, tuple[tuple[str, ColumnType], ...]] = {
    META: (("key", "text"), ("value", "text")),
    LIVES: (
        ("liveid", "text"),
        ("userid", "text"),
        ("roomid", "text"),
        ("class_name", "text"),
        ("room_type", "integer"),
        ("start_time", "timestamptz"),
        ("end_time", "timestamptz"),
        ("first_seen", "timestamptz"),
        ("last_seen", "timestamptz"),
        ("raw", "json"),
    ),
    UNITS: (
        ("liveid", "text"),
        ("kind", "text"),
        ("userid", "text"),
        ("roomid", "text"),
        ("records", "bigint"),
        ("pages", "integer"),
        ("duplicates", "integer"),
        ("issues", "json"),
        ("live_end_time", "timestamptz"),
        ("fetched_at", "timestamptz"),
        ("run_id", "text"),
        ("final", "boolean"),
    ),
    RUNS: (
        ("run_id", "text"),
        ("userid", "text"),
        ("base_url", "text"),
        ("started_at", "timestamptz"),
        ("finished_at", "timestamptz"),
        ("since", "timestamptz"),
        ("until", "timestamptz"),
        ("kinds", "json"),
        ("complete", "boolean"),
        ("lives", "bigint"),
        ("units", "bigint"),
        ("units_skipped", "bigint"),
        ("records", "bigint"),
        ("requests", "bigint"),
        ("retries", "bigint"),
        ("rate_limited", "bigint"),
        ("failures", "bigint"),
        ("report", "json"),
    ),
    WATERMARKS: (
        ("userid", "text"),
        ("kind", "text"),
        ("watermark", "timestamptz"),
        ("run_id", "text"),
        ("updated_at", "timestamptz"),
    ),
}
_KEYS: dict[str, tuple[str, ...]] = {
    META: ("key",),
    LIVES: ("liveid",),
    UNITS: ("liveid", "kind"),
    RUNS: ("run_id",),
    WATERMARKS: ("userid", "kind"),
}
#: The bookkeeping tables that grow with the account's history: a row per live, per unit.
HISTORY = (LIVES, UNITS)

COLUMNS: dict[str, tuple[str, ...]] = {
    table: tuple(name for name, _ in columns) for table, columns in _FIXED.items()
}
COLUMN_TYPES: dict[str, dict[str, ColumnType]] = {
    table: dict(columns) for table, columns in _FIXED.items()
}


@attrs.frozen
class SqlDialect:
    """How one backend spells types, parameters and the views over JSON."""

    name: str
    types: dict[str, str]
    #: The parameter marker (``?`` for DuckDB, ``%s`` for psycopg).
    param: str
    #: The tables that grow with the account's history (the kinds', ``cc_lives``,
    #: ``cc_units``) get their primary key: PostgreSQL's index lives on disk. DuckDB holds
    #: an index (ART) in memory whole, outside what it can evict: at the sync's 24 MB,
    #: ``cc_units`` ran out of memory at about 185,000 units (37,000 lives, three weeks of
    #: an account with 1,600 a night), and every later sync of that file failed. Without
    #: it, a sync replaces rows by deleting them first, which also makes them unique.
    index_history: bool
    #: ``column`` is one of a list of texts given as one parameter: one value to bind,
    #: however long the list (a statement with hundreds of markers is slow to prepare).
    in_texts: str
    #: What follows a column's type in ``CREATE TABLE``, by type (DuckDB's zstd for JSON,
    #: where the file's storage format has it: see DuckDBBackend).
    column_options: dict[str, str] = attrs.field(factory=dict)

    def table(self, schema: str, name: str) -> str:
        return f"{quote(schema)}.{quote(name)}"

    def params(self, count: int) -> str:
        return ", ".join([self.param] * count)

    def one_of(self, column: str) -> str:
        """A condition: ``column`` is in the list of texts bound as its one parameter."""
        return self.in_texts.format(column=column)

    def create_statements(self, schema: str, *, create_schema: bool = True) -> list[str]:
        """Schema (unless ``create_schema`` is false), tables and views, each ``IF NOT
        EXISTS`` / ``OR REPLACE``."""
        statements = [f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}"] if create_schema else []
        statements += [self.create_table(schema, name) for name in _FIXED]
        for table in KIND_TABLES.values():
            columns = tuple((c.name, c.type) for c in table.columns)
            keys = ("liveid", "record_key") if self.index_history else ()
            statements.append(self._create(schema, table.name, columns, keys))
        statements += self._views(schema)
        return statements

    def create_table(self, schema: str, name: str, *, as_name: str | None = None) -> str:
        """``CREATE TABLE`` of a bookkeeping table (named ``as_name`` when given)."""
        keys = _KEYS[name] if self.index_history or name not in HISTORY else ()
        return self._create(schema, as_name or name, _FIXED[name], keys)

    def _create(
        self,
        schema: str,
        name: str,
        columns: Sequence[tuple[str, ColumnType]],
        keys: Sequence[str],
    ) -> str:
        parts = [
            " ".join(
                filter(None, (quote(column), self.types[type_], self.column_options.get(type_)))
            )
            for column, type_ in columns
        ]
        if keys:
            parts.append(f"PRIMARY KEY ({', '.join(quote(k) for k in keys)})")
        return f"CREATE TABLE IF NOT EXISTS {self.table(schema, name)} ({', '.join(parts)})"

    def _views(self, schema: str) -> list[str]:
        """One row per reply of votes, answer cards and brainstorms."""
        views = []
        for kind, id_column, fields in (
            ("vote", "vote_id", (("uid", "text"), ("uname", "text"), ("choices", "json"))),
            (
                "answercard",
                "qvote_id",
                (("uid", "text"), ("choice", "json"), ("reply_time", "timestamptz")),
            ),
            (
                "brainstorm",
                "brainsstom_id",
                (("uid", "text"), ("uname", "text"), ("content", "text")),
            ),
        ):
            selected = ", ".join(self._reply_field(name, type_) for name, type_ in fields)
            source = self.table(schema, f"{PREFIX}{kind}")
            views.append(
                f"CREATE OR REPLACE VIEW {self.table(schema, f'{PREFIX}{kind}_replies')} AS "
                f"SELECT t.liveid, t.roomid, t.{quote(id_column)}, {selected} "
                f"FROM {source} AS t{self._replies_join()}"
            )
        return views

    def _replies_join(self) -> str:
        if self.name == "duckdb":
            return ", unnest(json_extract(t.raw, '$.reply_data[*]')) AS r(reply)"
        replies = f"{_postgres_readable('t.raw')}->'reply_data'"
        return (
            f" CROSS JOIN LATERAL json_array_elements(CASE WHEN json_typeof({replies})"
            f" = 'array' THEN {replies} ELSE '[]'::json END) AS r(reply)"
        )

    def _reply_field(self, name: str, type_: str) -> str:
        if type_ == "json":
            return f"r.reply->'{name}' AS {quote(name)}"
        if type_ != "timestamptz":
            return f"r.reply->>'{name}' AS {quote(name)}"
        text = f"r.reply->>'{name}'"
        if self.name == "duckdb":
            time = duckdb_time(duckdb_trimmed(text))
        else:
            time = postgres_time(postgres_trimmed(text))
        return f"{time} AS {quote(name)}"


DUCKDB = SqlDialect(
    "duckdb",
    {
        "text": "VARCHAR",
        "bigint": "BIGINT",
        "integer": "INTEGER",
        "double": "DOUBLE",
        "timestamptz": "TIMESTAMPTZ",
        "json": "JSON",
        "boolean": "BOOLEAN",
    },
    "?",
    index_history=False,
    in_texts="{column} IN (SELECT unnest(from_json(?::JSON, '[\"VARCHAR\"]')))",
)
POSTGRES = SqlDialect(
    "postgres",
    {
        "text": "text",
        "bigint": "bigint",
        "integer": "integer",
        "double": "double precision",
        "timestamptz": "timestamptz",
        # json, not jsonb: it keeps the record's text exactly and accepts \u0000.
        "json": "json",
        "boolean": "boolean",
    },
    "%s",
    index_history=True,
    in_texts="{column} = ANY(%s)",
)
