"""Typing a record's fields in SQL: the same rules in both dialects.

A sync hands the database each record's JSON text and the database types its fields
(:mod:`.staged` says why). The rules, in both dialects:

- a whole number (a JSON number or text of digits, a minus sign allowed) in range, else
  NULL: ``1.5``, ``"1.0"``, ``true`` and an id beyond 64 bits are NULL;
- a duration is a finite number (or text of one): ``"nan"`` and ``"1e999"`` are NULL;
- a time is Beijing time in the vendor's layout (``YYYY-MM-DD HH:MM:SS``, a trailing space
  trimmed), minutes, a date alone, or ``T`` between date and time; anything else, an
  impossible date and year 0 included, is NULL;
- text is the value, a number or ``true`` as written, an object or a list as its JSON text.

Checked text is cast, unchecked text never is: PostgreSQL 15 has no cast that returns NULL
on failure, and one failing row would fail its whole group. ``CASE`` nested in ``CASE`` is
what fixes the order of evaluation there (``AND`` does not).
"""

from __future__ import annotations

__all__ = [
    "TIME_LAYOUT",
    "WHOLE_NUMBER",
    "duckdb_double",
    "duckdb_time",
    "duckdb_trimmed",
    "duckdb_whole",
    "literal",
    "postgres_double",
    "postgres_time",
    "postgres_trimmed",
    "postgres_whole",
]

#: Patterns as SQL literals; both dialects' regular expressions read them alike.
WHOLE_NUMBER = r"'^\s*-?[0-9]+\s*$'"
_DECIMAL_NUMBER = r"'^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$'"
TIME_LAYOUT = (
    r"'^([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-(0[1-9]|1[0-2])"
    r"-(0[1-9]|[12][0-9]|3[01])([ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?)?$'"
)
_BOUNDS = {"bigint": (-(1 << 63), (1 << 63) - 1), "integer": (-(1 << 31), (1 << 31) - 1)}


def literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _day_exists(t: str) -> str:
    """The day of ``t`` (a text matching TIME_LAYOUT) is in its month."""
    year, month, day = f"substr({t}, 1, 4)", f"substr({t}, 6, 2)", f"substr({t}, 9, 2)"
    leap = f"({year}::int % 4 = 0 AND ({year}::int % 100 <> 0 OR {year}::int % 400 = 0))"
    return (
        f"{day} <= '28' OR {month} <> '02' AND ({day} <= '30' "
        f"OR {month} IN ('01', '03', '05', '07', '08', '10', '12')) "
        f"OR {month} = '02' AND {day} = '29' AND {leap}"
    )


def _with_seconds(t: str) -> str:
    """``t`` (a date, minutes or seconds: 10, 16 or 19 characters) with seconds, a date alone
    at its midnight (DuckDB before 2.0 casts no time without seconds). One expression, not
    a CASE: DuckDB binds every use of ``t`` anew, a fraction of a millisecond a statement."""
    return f"{t} || right(' 00:00:00', 19 - length({t}))"


def postgres_time(t: str) -> str:
    """``t``, trimmed text, as a ``timestamptz`` (Beijing time), or NULL."""
    return (
        f"CASE WHEN {t} ~ {TIME_LAYOUT} THEN CASE WHEN {_day_exists(t)} "
        f"THEN ({_with_seconds(t)} || '+08')::timestamptz END END"
    )


def duckdb_time(t: str) -> str:
    """``t``, trimmed text, as a ``TIMESTAMPTZ`` (Beijing time), or NULL: DuckDB's
    ``TRY_CAST`` turns an impossible date into NULL itself."""
    return (
        f"CASE WHEN regexp_full_match({t}, {TIME_LAYOUT}) "
        f"THEN TRY_CAST({_with_seconds(t)} || '+08:00' AS TIMESTAMPTZ) END"
    )


def postgres_whole(value: str, type_: str) -> str:
    """``value`` (text) as a ``bigint`` or ``integer``, or NULL."""
    low, high = _BOUNDS[type_]
    number = f"btrim({value})::numeric"
    return (
        f"CASE WHEN {value} ~ {WHOLE_NUMBER} THEN CASE WHEN {number} "
        f"BETWEEN {low} AND {high} THEN {number}::{type_} END END"
    )


def duckdb_whole(value: str, type_: str) -> str:
    """``value`` (text) as a ``BIGINT`` or ``INTEGER``, or NULL."""
    return (
        f"CASE WHEN regexp_full_match({value}, {WHOLE_NUMBER}) "
        f"THEN TRY_CAST(trim({value}) AS {type_.upper()}) END"
    )


def duckdb_double(value: str) -> str:
    """``value`` (text) as a ``DOUBLE``, or NULL (also where it would be infinite)."""
    number = f"TRY_CAST(trim({value}) AS DOUBLE)"
    return (
        f"CASE WHEN regexp_full_match({value}, {_DECIMAL_NUMBER}) AND isfinite({number}) "
        f"THEN {number} END"
    )


def postgres_trimmed(value: str) -> str:
    """``value`` (text) without the whitespace around it."""
    return f"btrim({value}, E' \\t\\n\\r')"


def duckdb_trimmed(value: str) -> str:
    """``value`` (text) without the whitespace around it: the characters themselves, not
    ``chr(9)`` and the like, which DuckDB folds anew at every use."""
    return f"trim({value}, ' \t\n\r')"


def postgres_double(value: str) -> str:
    """``value`` (text) as a ``float8``, or NULL (also where a float8 would overflow)."""
    number = f"btrim({value})::numeric"
    return (
        f"CASE WHEN {value} ~ {_DECIMAL_NUMBER} THEN CASE WHEN abs({number}) < 1e308 AND "
        f"(abs({number}) > 1e-307 OR {number} = 0) THEN {number}::float8 END END"
    )
