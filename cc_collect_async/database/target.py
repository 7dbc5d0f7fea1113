"""Where a sync writes: ``--db`` parsed into a DuckDB file or a PostgreSQL connection.

``duckdb:///cc_collect.duckdb`` is a file relative to the current directory and
``duckdb:////var/lib/cc/cc.duckdb`` an absolute one (the SQLAlchemy convention); a bare path
is a DuckDB file too. ``postgresql://`` (or ``postgres://``) URLs go to libpq as they are.
The password is kept out of every text shown (``display``), like the API key.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import attrs

from .errors import DatabaseUsageError

__all__ = ["DEFAULT_DATABASE", "ENV_DATABASE_URL", "DatabaseTarget", "parse_target"]

DEFAULT_DATABASE = "duckdb:///cc_collect.duckdb"
ENV_DATABASE_URL = "CC_DATABASE_URL"

Dialect = Literal["duckdb", "postgres"]


@attrs.frozen
class DatabaseTarget:
    """A parsed ``--db``: which engine, where, and in which schema."""

    dialect: Dialect
    #: The DuckDB file path, or the libpq URL (with its password: never print this).
    location: str = attrs.field(repr=False)
    schema: str

    @property
    def display(self) -> str:
        """The target as it may be shown: the password replaced by ``***``."""
        if self.dialect == "duckdb":
            return f"DuckDB file {self.location} (schema {self.schema})"
        parts = urlsplit(self.location)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            name = user.partition(":")[0]
            netloc = f"{name}:***@{host}"
        safe = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        return f"PostgreSQL {safe} (schema {self.schema})"

    def __repr__(self) -> str:
        return f"DatabaseTarget({self.display!r})"


def _check_schema(schema: str) -> str:
    if not schema or "\x00" in schema or len(schema) > 63:
        raise DatabaseUsageError(f"--schema must be 1 to 63 characters without NUL, not {schema!r}")
    return schema


def _schema(schema: str | None, default: str) -> str:
    return _check_schema(default if schema is None else schema)


_DUCKDB_URL = "a DuckDB URL is duckdb:///RELATIVE/FILE or duckdb:////ABSOLUTE/FILE"


def _file(path: str) -> str:
    if path.startswith(":memory:"):
        raise DatabaseUsageError(
            "--db: an in-memory DuckDB database is gone when the sync ends; give a file: "
            "duckdb:///FILE"
        )
    return path


def parse_target(url: str, schema: str | None = None) -> DatabaseTarget:
    """``--db`` and ``--schema`` checked; raises :class:`DatabaseUsageError` with a one-line
    message for anything else."""
    text = url.strip()
    if not text:
        raise DatabaseUsageError("--db is empty; give duckdb:///FILE or postgresql://...")
    scheme, sep, rest = text.partition("://")
    # The text is not quoted back in these messages: it may hold a password.
    if not sep:
        if text.lower().startswith(("postgresql:", "postgres:")):
            raise DatabaseUsageError("--db: write postgresql://USER@HOST:PORT/DBNAME")
        if text.lower().startswith("duckdb:"):
            raise DatabaseUsageError(_DUCKDB_URL)
        if "=" in text:  # host=... dbname=... password=...: not a file to create
            raise DatabaseUsageError(
                "--db looks like a libpq key=value string; give a URL: "
                "postgresql://USER@HOST:PORT/DBNAME (the password in PGPASSWORD or ~/.pgpass)"
            )
        return DatabaseTarget("duckdb", _file(text), _schema(schema, "main"))
    scheme = scheme.lower()
    if scheme == "duckdb":
        if not rest.startswith("/") or rest == "/":
            raise DatabaseUsageError(_DUCKDB_URL)
        return DatabaseTarget("duckdb", _file(rest[1:]), _schema(schema, "main"))
    if scheme in ("postgresql", "postgres"):
        name = _schema(schema, "public")
        if name.lower().startswith("pg_"):  # PostgreSQL's own: CREATE SCHEMA refuses it
            raise DatabaseUsageError(
                f"--schema {name!r}: names starting with pg_ are PostgreSQL's own; pick another"
            )
        return DatabaseTarget("postgres", text, name)
    raise DatabaseUsageError(
        f"--db: unknown database kind {scheme!r}; use duckdb:///FILE or postgresql://..."
    )
